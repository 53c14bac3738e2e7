//! The console's routes (French paths, like its pages):
//!
//! - `GET /`: the site's rooms, their homogeneity and verification;
//! - `GET /salles/{room}`: one tile per workstation; `…/evenements`: the tiles as they change
//!   (server-sent events); `POST /salles/{room}/postes/{host}/reimage`: the one action;
//! - `GET /executions`, `/executions/{id}`: the runs and one run's journal;
//! - `GET /audit`: the audit log and its chain check;
//! - `GET /rapports`, `/rapports/{kind}`, `/rapports/fichiers/{name}`: the fleet reports,
//!   rendered at each request, and the verify reports written by the runs.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt as _};

use super::Console;
use super::live::{Change, Update};
use super::pages::{self, esc, state_fr, step_fr};
use super::view::{self, ViewError};
use crate::audit::{Action, AuditLog, Entry};
use crate::journal::Journal;

type Shared = Arc<Console>;

/// The console's router.
pub fn router(console: Shared) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/salles/{room}", get(room_page))
        .route("/salles/{room}/evenements", get(room_events))
        .route("/salles/{room}/postes/{host}/reimage", post(reimage))
        .route("/executions", get(runs_page))
        .route("/executions/{id}", get(run_page))
        .route("/audit", get(audit_page))
        .route("/rapports", get(reports_page))
        .route("/rapports/fichiers/{name}", get(report_file))
        .route("/rapports/{kind}", get(fleet_report))
        .with_state(console)
}

/// A page that could not be made: its status and a French page saying why.
struct PageError(StatusCode, String);

impl From<ViewError> for PageError {
    fn from(e: ViewError) -> Self {
        let code = match e {
            ViewError::NoRoom(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        PageError(code, e.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = if self.0 == StatusCode::NOT_FOUND {
            "Page introuvable"
        } else {
            "Erreur"
        };
        let body = format!("<p class=\"ko\">{}</p>", esc(&self.1));
        (self.0, Html(pages::page(title, "", &body, None))).into_response()
    }
}

fn internal(e: impl std::fmt::Display) -> PageError {
    PageError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

type PageResult = Result<Html<String>, PageError>;

async fn home(State(c): State<Shared>) -> PageResult {
    let loaded = view::load(&c)?;
    let mut body = String::from(
        "<table><tr><th>Salle</th><th>Nom</th><th>Postes</th><th>Homogénéité</th>\
         <th>Image</th><th>Vérification</th><th>Dernière exécution</th></tr>",
    );
    for (id, (name, hosts)) in view::rooms(&loaded) {
        let st = view::status(&c, &loaded, &id).await?;
        let (homogeneous, homogeneity) = view::homogeneity(&hosts);
        let verify = st.steps.iter().find(|s| s.step.to_string() == "verify");
        let verified = verify.map_or(0, |s| s.hosts.iter().filter(|h| h.state == "done").count());
        let verify_text = match verify {
            Some(s) if s.state == "done" => {
                format!(
                    "<span class=\"ok\">{verified} / {} conformes</span>",
                    hosts.len()
                )
            }
            Some(s) => format!(
                "<span class=\"{}\">{verified} / {} vérifiés ({})</span>",
                if s.state == "failed" { "ko" } else { "wait" },
                hosts.len(),
                esc(state_fr(s.state))
            ),
            None => "—".into(),
        };
        let _ = write!(
            body,
            "<tr><td><a href=\"/salles/{id}\">{id}</a></td><td>{}</td><td>{}</td>\
             <td class=\"{}\">{}</td><td>{}</td><td>{verify_text}</td><td>{}</td></tr>",
            esc(&name),
            hosts.len(),
            if homogeneous { "ok" } else { "ko" },
            esc(&homogeneity),
            esc(st.image.as_deref().unwrap_or("aucune")),
            st.last_run.as_ref().map_or("—".to_string(), |r| format!(
                "<a href=\"/executions/{}\">n° {}</a> {}",
                r.id,
                r.id,
                esc(state_fr(r.outcome.as_deref().unwrap_or("running")))
            )),
            id = esc(&id),
        );
    }
    body.push_str("</table>");
    Ok(Html(pages::page(
        "Salles du lycée",
        &view::site_name(&loaded),
        &body,
        None,
    )))
}

async fn room_page(State(c): State<Shared>, Path(room): Path<String>) -> PageResult {
    let loaded = view::load(&c)?;
    let st = view::status(&c, &loaded, &room).await?;
    let recipe = loaded.ws.rooms.iter().find(|r| r.id.value == room);
    let hosts = view::room_hosts(&loaded, &room);
    let board = c.feed.board(&room);
    let domain = view::domain_text(&loaded, &room);
    let (_, homogeneity) = view::homogeneity(&hosts);
    let mut body = format!(
        "<p>{} — modèle de la recette : {} — {} postes, {} — image : {} — recette {}</p>",
        esc(recipe.map_or("", |r| r.name.as_str())),
        esc(recipe.map_or("", |r| r.model.value.as_str())),
        hosts.len(),
        esc(&homogeneity),
        esc(st.image.as_deref().unwrap_or("aucune")),
        esc(&st.recipe_digest),
    );
    body.push_str(&pages::banner(&board, st.last_run.as_ref()));
    body.push_str("<section id=\"postes\">");
    for t in view::tiles(&st, &board, &hosts) {
        body.push_str(&pages::tile(&room, &t, &domain));
    }
    body.push_str("</section><h2>Étapes selon le journal (au chargement de la page)</h2><table>");
    for s in &st.steps {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(step_fr(s.step.as_str())),
            esc(state_fr(s.state)),
            esc(&s.detail)
        );
    }
    body.push_str("</table>");
    if let Some(b) = &st.blocked {
        let _ = write!(body, "<p class=\"ko\">Bloqué : {}</p>", esc(b));
    }
    body.push_str("<h2>Dernière vérification</h2>");
    match view::latest_record(&c.workspace, &room) {
        Some((name, record)) => body.push_str(&pages::record_section(&name, &record)),
        None => body.push_str("<p>La salle n'a pas encore été vérifiée.</p>"),
    }
    body.push_str("<h2>Rapports de vérification</h2><ul>");
    let reports: Vec<_> = view::verify_reports(&c.workspace)
        .into_iter()
        .filter(|(r, _)| *r == room)
        .collect();
    if reports.is_empty() {
        body.push_str("<li>Aucun rapport pour cette salle.</li>");
    }
    for (_, name) in reports {
        let _ = write!(
            body,
            "<li><a href=\"/rapports/fichiers/{n}\">{n}</a></li>",
            n = esc(&name)
        );
    }
    body.push_str("</ul><h2>Exécutions de la salle</h2>");
    let runs = Journal::open_workspace(&c.workspace)
        .and_then(|j| j.runs(Some(&room)))
        .map_err(internal)?;
    body.push_str(&pages::runs_table(&runs));
    let title = match recipe {
        Some(r) => format!("{} ({room})", r.name),
        None => format!("Salle {room}"),
    };
    Ok(Html(pages::page(
        &title,
        &view::site_name(&loaded),
        &body,
        Some(pages::ROOM_SCRIPT),
    )))
}

/// The events that redraw what `change` touched.
fn events_for(
    c: &Console,
    room: &str,
    change: &Change,
    domain: &pages::DomainText,
    st: Option<&crate::engine::RoomStatus>,
    hosts: &[(String, String)],
) -> Vec<Event> {
    let board = c.feed.board(room);
    let tile_event = |t: &super::tiles::Tile| {
        Event::default().event("tile").data(
            serde_json::json!({ "host": t.host, "html": pages::tile(room, t, domain) }).to_string(),
        )
    };
    let run_event = || {
        Event::default().event("run").data(
            serde_json::json!({ "html": pages::banner(&board, st.and_then(|s| s.last_run.as_ref())) })
                .to_string(),
        )
    };
    match change {
        Change::Host(h) => board.hosts.get(h).map(tile_event).into_iter().collect(),
        Change::Run => vec![run_event()],
        Change::All => {
            let mut evs = vec![run_event()];
            if let Some(st) = st {
                evs.extend(view::tiles(st, &board, hosts).iter().map(tile_event));
            }
            evs
        }
    }
}

async fn room_events(
    State(c): State<Shared>,
    Path(room): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    // Subscribed before the first picture is taken: no change falls between the two.
    let rx = c.feed.subscribe();
    let loaded = view::load(&c)?;
    let st = view::status(&c, &loaded, &room).await?;
    let domain = view::domain_text(&loaded, &room);
    let hosts = view::room_hosts(&loaded, &room);
    let first = events_for(&c, &room, &Change::All, &domain, Some(&st), &hosts);
    struct Follow {
        rx: tokio::sync::broadcast::Receiver<Update>,
        c: Shared,
        room: String,
        domain: pages::DomainText,
        hosts: Vec<(String, String)>,
    }
    let follow = Follow {
        rx,
        c,
        room,
        domain,
        hosts,
    };
    let live = futures::stream::unfold(follow, |mut f| async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let change = match f.rx.recv().await {
                Ok(u) if u.room == f.room => u.change,
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => Change::All,
                Err(RecvError::Closed) => return None,
            };
            // A new run (or a page too slow to follow) is redrawn whole, from the journal too.
            let st = match change {
                Change::All => match view::load(&f.c) {
                    Ok(l) => view::status(&f.c, &l, &f.room).await.ok(),
                    Err(_) => None,
                },
                _ => None,
            };
            let evs = events_for(&f.c, &f.room, &change, &f.domain, st.as_ref(), &f.hosts);
            return Some((futures::stream::iter(evs), f));
        }
    })
    .flatten();
    let all = futures::stream::iter(first).chain(live).map(Ok);
    Ok(Sse::new(all).keep_alive(KeepAlive::default()))
}

#[derive(Debug, serde::Deserialize)]
struct ReimageForm {
    #[serde(default)]
    jeton: String,
}

async fn reimage(
    State(c): State<Shared>,
    Path((room, host)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<ReimageForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let given = form.as_ref().map_or(bearer, |f| f.jeton.as_str());
    let given = if given.is_empty() { bearer } else { given };
    if !super::token_matches(&c.token, given) {
        let body = "<p class=\"ko\" id=\"refus\">Jeton manquant ou incorrect : rien n'a été fait. \
                    Le jeton est affiché au démarrage de <code>parc console</code>.</p>";
        return (
            StatusCode::FORBIDDEN,
            Html(pages::page("Réimage refusée", "", body, None)),
        )
            .into_response();
    }
    match start_reimage(&c, &room, &host, peer).await {
        Ok(log) => {
            let _ = log;
            Redirect::to(&format!("/salles/{room}?reimage={host}")).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Checks the workstation and the room's lock, starts `parc reimage HOST` in the background
/// (its output in `.parc/logs/`) and writes the audit entry.
async fn start_reimage(
    c: &Console,
    room: &str,
    host: &str,
    peer: SocketAddr,
) -> Result<std::path::PathBuf, PageError> {
    let loaded = view::load(c)?;
    if !view::room_hosts(&loaded, room)
        .iter()
        .any(|(h, _)| h == host)
    {
        return Err(PageError(
            StatusCode::NOT_FOUND,
            format!("{host} n'est pas un poste de la salle {room}"),
        ));
    }
    let journal = Journal::open_workspace(&c.workspace).map_err(internal)?;
    if let Some(h) = journal
        .lock_holder(room)
        .map_err(internal)?
        .filter(crate::journal::process_alive)
    {
        return Err(PageError(
            StatusCode::CONFLICT,
            format!(
                "la salle {room} est occupée par parc (pid {} sur {}, depuis {}) : réessayez à la fin de l'exécution",
                h.pid, h.host, h.started
            ),
        ));
    }
    let logs = c.state_dir().join("logs");
    std::fs::create_dir_all(&logs).map_err(internal)?;
    let log = logs.join(format!(
        "console-reimage-{host}-{}.log",
        chrono::Local::now().format("%Y%m%dT%H%M%S")
    ));
    let out = std::fs::File::create(&log).map_err(internal)?;
    let err = out.try_clone().map_err(internal)?;
    let Some((program, args)) = c.reimage.split_first() else {
        return Err(internal("no reimage command"));
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .arg(host)
        .arg("-w")
        .arg(&c.workspace)
        .envs(&c.reimage_env)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(internal)?;
    let entry = Entry {
        room: room.to_owned(),
        action: Action::Reimage,
        subject: host.to_owned(),
        actor: c.actor.clone(),
        detail: format!("asked from the console (from {})", peer.ip()),
    };
    // Audited once started; an action the audit log cannot hold is stopped, not run unsaid.
    if let Err(e) = crate::audit::record(&c.workspace, &entry) {
        let _ = child.kill().await;
        return Err(internal(e));
    }
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(log)
}

async fn runs_page(State(c): State<Shared>) -> PageResult {
    let loaded = view::load(&c)?;
    let runs = Journal::open_workspace(&c.workspace)
        .and_then(|j| j.runs(None))
        .map_err(internal)?;
    Ok(Html(pages::page(
        "Exécutions",
        &view::site_name(&loaded),
        &pages::runs_table(&runs),
        None,
    )))
}

async fn run_page(State(c): State<Shared>, Path(id): Path<i64>) -> PageResult {
    let loaded = view::load(&c)?;
    let journal = Journal::open_workspace(&c.workspace).map_err(internal)?;
    let run = journal.run(id).map_err(|e| match e {
        crate::journal::JournalError::NoSuchRun(_) => {
            PageError(StatusCode::NOT_FOUND, format!("aucune exécution n° {id}"))
        }
        e => internal(e),
    })?;
    let attempts = journal.attempts(id).map_err(internal)?;
    Ok(Html(pages::page(
        &format!("Exécution n° {id}"),
        &view::site_name(&loaded),
        &pages::run_body(&run, &attempts),
        None,
    )))
}

async fn audit_page(State(c): State<Shared>) -> PageResult {
    let loaded = view::load(&c)?;
    let log = AuditLog::open_workspace(&c.workspace).map_err(internal)?;
    let entries = log.list(None, None).map_err(internal)?;
    let verdict = match log.verify().map_err(internal)? {
        Ok(v) => Ok(v.entries),
        Err(b) => Err((b.seq, b.why)),
    };
    Ok(Html(pages::page(
        "Journal d'audit",
        &view::site_name(&loaded),
        &pages::audit_body(&entries, verdict),
        None,
    )))
}

/// The fleet reports by their French path.
const FLEET: [(&str, crate::report::Kind, &str); 4] = [
    (
        "homogeneite",
        crate::report::Kind::Homogeneity,
        "Homogénéité des salles",
    ),
    (
        "rotation",
        crate::report::Kind::Rotation,
        "Rotation des postes",
    ),
    (
        "renouvellement",
        crate::report::Kind::Renewal,
        "Postes à renouveler",
    ),
    ("prelp", crate::report::Kind::Prelp, "Demande PRELP"),
];

async fn reports_page(State(c): State<Shared>) -> PageResult {
    let loaded = view::load(&c)?;
    let mut body = String::from("<h2>Rapports du parc</h2><ul>");
    for (path, _, title) in FLEET {
        let _ = write!(body, "<li><a href=\"/rapports/{path}\">{title}</a></li>");
    }
    body.push_str("</ul><h2>Rapports de vérification</h2><ul>");
    let reports = view::verify_reports(&c.workspace);
    if reports.is_empty() {
        body.push_str("<li>Aucun rapport de vérification.</li>");
    }
    for (room, name) in reports {
        let _ = write!(
            body,
            "<li>Salle {} : <a href=\"/rapports/fichiers/{n}\">{n}</a></li>",
            esc(&room),
            n = esc(&name)
        );
    }
    body.push_str("</ul>");
    Ok(Html(pages::page(
        "Rapports",
        &view::site_name(&loaded),
        &body,
        None,
    )))
}

async fn fleet_report(State(c): State<Shared>, Path(kind): Path<String>) -> PageResult {
    let Some((_, k, _)) = FLEET.iter().find(|(p, _, _)| *p == kind) else {
        return Err(PageError(
            StatusCode::NOT_FOUND,
            format!("aucun rapport « {kind} »"),
        ));
    };
    let loaded = view::load(&c)?;
    let fleet = crate::domain::fleet::Fleet::from_workspace(&loaded.ws);
    let today = chrono::Local::now().date_naive();
    let year = crate::report::default_year(today);
    let report = crate::report::build(*k, &[fleet], year, today)
        .ok_or_else(|| internal("this report covers one lycée"))?;
    Ok(Html(crate::report::render(
        &report,
        crate::report::Format::Html,
    )))
}

async fn report_file(State(c): State<Shared>, Path(name): Path<String>) -> Response {
    let Some((path, kind)) = view::report_file(&c.workspace, &name) else {
        return PageError(StatusCode::NOT_FOUND, format!("aucun rapport « {name} »"))
            .into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
        Err(_) => {
            PageError(StatusCode::NOT_FOUND, format!("aucun rapport « {name} »")).into_response()
        }
    }
}
