//! `parc inventory import glpi` against a local HTTP server (127.0.0.1) that replays GLPI
//! responses shaped as GLPI documents them (tests/fixtures/glpi/README.md). Covers the round
//! trip, pagination, and every failure mode: each leaves devices.csv byte-identical.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

const APP_TOKEN: &str = "f7g3csp8mgatg5ebc5elnazakw20i9fyev1qopya7";
const USER_TOKEN: &str = "tok-user-0123456789";
const SESSION: &str = "83af7e620c83a50a18d3eac2f6ed05a3ca0bea62";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/glpi")
            .join(name),
    )
    .unwrap()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    /// No Content-Range and no totalcount (as behind some proxies): the client must stop at
    /// ERROR_RANGE_EXCEED_TOTAL.
    NoRange,
    Unauthorized,
    ServerError,
    Malformed,
    Slow,
}

#[derive(Clone)]
struct Glpi {
    mode: Mode,
    log: Arc<Mutex<Vec<String>>>,
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [("Content-Type", "application/json")], body).into_response()
}

fn app_token_ok(h: &HeaderMap) -> bool {
    h.get("App-Token").and_then(|v| v.to_str().ok()) == Some(APP_TOKEN)
}

fn session_ok(h: &HeaderMap) -> bool {
    app_token_ok(h) && h.get("Session-Token").and_then(|v| v.to_str().ok()) == Some(SESSION)
}

async fn init_session(State(g): State<Glpi>, h: HeaderMap) -> Response {
    g.log.lock().unwrap().push("initSession".into());
    let auth = h
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if g.mode == Mode::Unauthorized
        || !app_token_ok(&h)
        || auth != format!("user_token {USER_TOKEN}")
    {
        return json(StatusCode::UNAUTHORIZED, fixture("error-login.json"));
    }
    json(StatusCode::OK, fixture("initSession.json"))
}

async fn kill_session(State(g): State<Glpi>, h: HeaderMap) -> Response {
    g.log
        .lock()
        .unwrap()
        .push(format!("killSession ok={}", session_ok(&h)));
    json(StatusCode::OK, String::new())
}

async fn search_options(State(g): State<Glpi>, h: HeaderMap) -> Response {
    g.log.lock().unwrap().push("listSearchOptions".into());
    if !session_ok(&h) {
        return json(
            StatusCode::UNAUTHORIZED,
            r#"["ERROR_SESSION_TOKEN_INVALID","session_token seems invalid"]"#.into(),
        );
    }
    if g.mode == Mode::Malformed {
        let full = fixture("listSearchOptions-Computer.json");
        return json(StatusCode::OK, full[..full.len() / 2].to_string());
    }
    json(StatusCode::OK, fixture("listSearchOptions-Computer.json"))
}

async fn search(
    State(g): State<Glpi>,
    h: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let range = q
        .iter()
        .find(|(k, _)| k == "range")
        .map(|(_, v)| v.clone())
        .unwrap_or("0-49".into());
    g.log.lock().unwrap().push(format!(
        "search range={range} {}",
        q.iter()
            .filter(|(k, _)| k.starts_with("criteria"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    ));
    if !session_ok(&h) {
        return json(
            StatusCode::UNAUTHORIZED,
            r#"["ERROR_SESSION_TOKEN_INVALID","session_token seems invalid"]"#.into(),
        );
    }
    match g.mode {
        Mode::ServerError => {
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<html>Internal Server Error</html>".into(),
            );
        }
        Mode::Slow => tokio::time::sleep(Duration::from_secs(5)).await,
        _ => {}
    }
    let all: Value = serde_json::from_str(&fixture("search-Computer.json")).unwrap();
    let mut data: Vec<Value> = all["data"].as_array().unwrap().clone();
    // The location criterion, as GLPI applies it ("contains" on option 3).
    let field = q
        .iter()
        .find(|(k, _)| k == "criteria[0][field]")
        .map(|(_, v)| v.clone());
    if let Some(f) = field {
        let value = q
            .iter()
            .find(|(k, _)| k == "criteria[0][value]")
            .map(|(_, v)| v.to_lowercase())
            .unwrap();
        data.retain(|r| r[&f].as_str().unwrap_or("").to_lowercase().contains(&value));
    }
    let (a, b) = range.split_once('-').unwrap();
    let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
    let total = data.len();
    if a >= total {
        return json(StatusCode::BAD_REQUEST, fixture("error-range.json"));
    }
    let end = b.min(total - 1);
    let page: Vec<Value> = data[a..=end].to_vec();
    let mut body = serde_json::json!({"count": page.len(), "data": page});
    if g.mode != Mode::NoRange {
        body["totalcount"] = total.into();
    }
    let status = if end + 1 < total {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut resp = json(status, body.to_string());
    if g.mode != Mode::NoRange {
        resp.headers_mut().insert(
            "Content-Range",
            format!("{a}-{end}/{total}").parse().unwrap(),
        );
        resp.headers_mut()
            .insert("Accept-Range", "990".parse().unwrap());
    }
    resp
}

/// Starts the fake GLPI on 127.0.0.1 in a background thread; returns its API URL.
fn serve(mode: Mode) -> (String, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let state = Glpi {
        mode,
        log: log.clone(),
    };
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .route("/glpi/apirest.php/initSession", get(init_session))
                .route("/glpi/apirest.php/killSession", get(kill_session))
                .route(
                    "/glpi/apirest.php/listSearchOptions/Computer",
                    get(search_options),
                )
                .route("/glpi/apirest.php/search/Computer", get(search))
                .with_state(state);
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}/glpi/apirest.php"), log)
}

const SITE: &str = "[lycee]\nname = \"Lycée Mistral\"\nuai = \"0840042X\"\nsector = \"Avignon\"\n\n\
[domain]\nrealm = \"MISTRAL.LAN\"\nnetbios = \"MISTRAL\"\ncomputers_ou = \"OU=Salles,DC=mistral,DC=lan\"\njoin_account = \"join\"\n\n\
[endpoint]\nkind = \"pxe\"\naddress = \"10.0.0.1\"\n";

const MODELS: &str = "[[model]]\nid = \"optiplex-7010\"\nmanufacturer = \"Dell\"\nname = \"OptiPlex 7010\"\nform_factor = \"desktop\"\nyear = 2019\n\
cpu = \"i5\"\ncpu_score = 6000\nram_gb = 8\ndisk_type = \"ssd\"\ndisk_gb = 256\ngpu = \"Intel\"\n\n\
[[model]]\nid = \"elitedesk-800-g4\"\nmanufacturer = \"HP\"\nname = \"EliteDesk 800 G4\"\nform_factor = \"desktop\"\nyear = 2021\n\
cpu = \"i7\"\ncpu_score = 9000\nram_gb = 16\ndisk_type = \"ssd\"\ndisk_gb = 512\ngpu = \"Intel\"\n";

const HEADER_ONLY: &str =
    "room;hostname;mac;serial;model;purchase_date;warranty_end;funding;state;ip;notes\n";

fn workspace(devices: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("site.toml"), SITE).unwrap();
    std::fs::write(d.path().join("models.toml"), MODELS).unwrap();
    std::fs::write(d.path().join("devices.csv"), devices).unwrap();
    let store = parc::secrets::SecretStore::new(&d.path().join(".parc"));
    store.set("glpi-app", APP_TOKEN.as_bytes()).unwrap();
    store.set("glpi-user", USER_TOKEN.as_bytes()).unwrap();
    d
}

fn import(ws: &Path, url: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut args = vec![
        "inventory",
        "import",
        "glpi",
        "-w",
        ws.to_str().unwrap(),
        "--url",
        url,
        "--app-token-secret",
        "glpi-app",
        "--user-token-secret",
        "glpi-user",
        "--page-size",
        "3",
    ];
    args.extend_from_slice(extra);
    Command::cargo_bin("parc")
        .unwrap()
        .args(&args)
        .timeout(Duration::from_secs(60))
        .assert()
}

fn out(a: &assert_cmd::assert::Assert) -> (String, String) {
    let o = a.get_output();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn round_trip_of_the_fixture_inventory() {
    let (url, log) = serve(Mode::Ok);
    let ws = workspace(HEADER_ONLY);
    let devices = ws.path().join("devices.csv");

    // Dry run by default: the diff is shown, nothing is written.
    let a = import(ws.path(), &url, &[]).success();
    let (stdout, _) = out(&a);
    assert!(
        stdout.contains(
            "+ b204-pc01: room b204, model optiplex-7010, serial 7XK2Q31, bought 2019-09-02"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("7 added, 0 updated, 0 skipped, 0 unchanged"),
        "{stdout}"
    );
    assert!(stdout.contains("Dry run"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&devices).unwrap(), HEADER_ONLY);

    // Written with --yes, exactly as expected.
    import(ws.path(), &url, &["--yes"]).success();
    assert_eq!(
        std::fs::read_to_string(&devices).unwrap(),
        fixture("expected-devices.csv")
    );

    // A second import changes nothing.
    let a = import(ws.path(), &url, &["--yes"]).success();
    let (stdout, _) = out(&a);
    assert!(
        stdout.contains("0 added, 0 updated, 0 skipped, 7 unchanged"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&devices).unwrap(),
        fixture("expected-devices.csv")
    );

    // The protocol: field ids looked up, three pages of 3, the session closed each time.
    let log = log.lock().unwrap().clone();
    assert_eq!(
        &log[..6],
        &[
            "initSession",
            "listSearchOptions",
            "search range=0-2 ",
            "search range=3-5 ",
            "search range=6-8 ",
            "killSession ok=true"
        ]
    );
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("killSession ok=true"))
            .count(),
        3
    );
}

#[test]
fn the_location_criterion_uses_the_resolved_field_id_and_updates_existing_rows() {
    let (url, log) = serve(Mode::Ok);
    let existing = format!(
        "{HEADER_ONLY}b203;b204-pc01;52:54:00:aa:bb:01;7XK2Q31;optiplex-7010;2019-09-02;2024-09-02;region;in-service;;\n"
    );
    let ws = workspace(&existing);
    let a = import(ws.path(), &url, &["--location", "B204", "--yes"]).success();
    let (stdout, _) = out(&a);
    assert!(
        stdout.contains("~ b204-pc01: room: b203 → b204"),
        "{stdout}"
    );
    assert!(stdout.contains("2 added, 1 updated"), "{stdout}");
    let log = log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|l| l.contains("criteria[0][field]=3") && l.contains("criteria[0][value]=B204")),
        "{log:?}"
    );
    let text = std::fs::read_to_string(ws.path().join("devices.csv")).unwrap();
    assert!(
        text.contains("b204;b204-pc03;52:54:00:aa:bb:03;7XK2Q33;optiplex-7010;2019-09-02;2024-09-02;region;broken"),
        "{text}"
    );
}

#[test]
fn range_exceed_total_ends_the_results() {
    // Without Content-Range nor totalcount, a full last page (3 computers in B204, pages of 3)
    // is followed by a request past the end, answered ERROR_RANGE_EXCEED_TOTAL: the end.
    let (url, log) = serve(Mode::NoRange);
    let ws = workspace(HEADER_ONLY);
    let a = import(ws.path(), &url, &["--location", "B204", "--yes"]).success();
    assert!(
        out(&a).0.contains("3 added, 0 updated, 0 skipped"),
        "{}",
        out(&a).0
    );
    let expected: String = fixture("expected-devices.csv")
        .lines()
        .take(4)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        std::fs::read_to_string(ws.path().join("devices.csv")).unwrap(),
        expected
    );
    let log = log.lock().unwrap().clone();
    let searches: Vec<&String> = log.iter().filter(|l| l.starts_with("search")).collect();
    assert_eq!(searches.len(), 2, "{log:?}");
    assert!(searches[1].starts_with("search range=3-5 "), "{log:?}");
    assert_eq!(log.last().unwrap(), "killSession ok=true");
}

/// A failure: the right exit code and message, devices.csv byte-identical, no token leaked.
fn fails(mode: Mode, code: i32, message: &str, extra: &[&str]) {
    let (url, log) = serve(mode);
    let existing = format!(
        "{HEADER_ONLY}b204;b204-pc01;52:54:00:aa:bb:01;7XK2Q31;optiplex-7010;2019-09-02;;region;in-service;;\n"
    );
    let ws = workspace(&existing);
    let before = std::fs::read(ws.path().join("devices.csv")).unwrap();
    let a = import(ws.path(), &url, &[&["--yes"], extra].concat()).code(code);
    let (stdout, stderr) = out(&a);
    assert!(stderr.contains(message), "{mode:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stdout.contains("Wrote"), "{stdout}");
    assert_eq!(
        std::fs::read(ws.path().join("devices.csv")).unwrap(),
        before,
        "{mode:?} changed devices.csv"
    );
    for t in [APP_TOKEN, USER_TOKEN, SESSION] {
        assert!(
            !stderr.contains(t) && !stdout.contains(t),
            "{mode:?} leaked a token"
        );
    }
    if mode != Mode::Unauthorized && mode != Mode::Slow {
        assert!(
            log.lock()
                .unwrap()
                .iter()
                .any(|l| l == "killSession ok=true"),
            "{mode:?}: session not closed"
        );
    }
}

#[test]
fn unauthorized() {
    fails(
        Mode::Unauthorized,
        2,
        "GLPI refused the credentials at http://127.0.0.1",
        &[],
    );
    fails(Mode::Unauthorized, 2, "ERROR_GLPI_LOGIN_USER_TOKEN", &[]);
}

#[test]
fn server_error() {
    fails(
        Mode::ServerError,
        1,
        "GLPI answered HTTP 500 at http://127.0.0.1",
        &[],
    );
}

#[test]
fn malformed_json() {
    fails(
        Mode::Malformed,
        1,
        "listSearchOptions/Computer is not the JSON expected",
        &[],
    );
}

#[test]
fn timeout() {
    fails(
        Mode::Slow,
        1,
        "did not answer within 1 s",
        &["--timeout-secs", "1"],
    );
}

#[test]
fn missing_secret_and_bad_url_are_user_errors() {
    let ws = workspace(HEADER_ONLY);
    let a = Command::cargo_bin("parc")
        .unwrap()
        .args([
            "inventory",
            "import",
            "glpi",
            "-w",
            ws.path().to_str().unwrap(),
            "--url",
            "http://127.0.0.1:9/apirest.php",
        ])
        .args([
            "--app-token-secret",
            "nope",
            "--user-token-secret",
            "glpi-user",
        ])
        .assert()
        .code(2);
    assert!(out(&a).1.contains("secret \"nope\" is not set"));
    let a = import(ws.path(), "ftp://x/apirest.php", &[]).code(2);
    assert!(out(&a).1.contains("is not a valid URL"));
    assert_eq!(
        std::fs::read_to_string(ws.path().join("devices.csv")).unwrap(),
        HEADER_ONLY
    );
}
