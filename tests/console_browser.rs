//! The console in a real browser (headless Chromium): a room's tiles change as a run goes
//! (through the event stream, the page never reloads), the reports open, a tampered audit
//! entry shows as broken, and the reimage action is refused without the token and done with
//! it. The run uses the fake adapters (tests/engine_support); the console is the real
//! `parc console`. A screenshot of the room page is kept as target/console-salle.png.

mod browser;
mod engine_support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use browser::Browser;
use engine_support::TestWs;
use serde_json::json;

/// `parc console` on a free port: (child, base URL, token).
fn start_console(ws: &TestWs) -> (Child, String, String) {
    let mut child = ws
        .command(&["console", "--port", "0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start parc console");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (mut url, mut token) = (None, None);
    while url.is_none() || token.is_none() {
        let line = lines
            .next()
            .expect("parc console stopped before printing its address and token")
            .expect("stderr line");
        if let Some(u) = line.strip_prefix("parc console: ") {
            url = Some(u.trim_end_matches('/').to_owned());
        }
        if let Some((_, t)) = line.split_once("reimage token") {
            token = t.rsplit(' ').next().map(str::to_owned);
        }
    }
    // Keep draining stderr so the console never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url.unwrap_or_default(), token.unwrap_or_default())
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a PNG has drawn content: enough pixels differ from the most common colour.
fn drawn_share(png_bytes: &[u8]) -> f64 {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let mut counts = std::collections::HashMap::new();
    for p in &pixels {
        *counts.entry(*p).or_insert(0usize) += 1;
    }
    let background = counts.values().copied().max().unwrap_or(0);
    assert!(counts.len() > 16, "only {} colours", counts.len());
    1.0 - background as f64 / pixels.len() as f64
}

#[test]
fn the_console_follows_a_run_live_opens_reports_checks_the_audit_chain_and_guards_reimage() {
    let ws = TestWs::new(250);
    // A stored secret the pages must never show (the domain join password).
    const SECRET: &str = "Jo1n-S3cret-Value";
    let mut set = ws
        .command(&["secret", "set", "domain-join"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("parc secret set");
    std::io::Write::write_all(&mut set.stdin.take().expect("stdin"), SECRET.as_bytes())
        .expect("secret on stdin");
    assert!(set.wait().expect("secret set").success());
    let (console, url, token) = start_console(&ws);
    let _console = Kill(console);
    assert_eq!(token.len(), 32, "token printed at start");
    let mut b = Browser::launch();

    // The site's rooms, then the room before any run: tiles waiting, the stream connected.
    b.goto(&format!("{url}/"));
    let home = b.eval("document.body.innerText");
    assert!(
        home.as_str()
            .is_some_and(|t| t.contains("b204") && t.contains("homogène")),
        "{home}"
    );
    let room_url = format!("{url}/salles/b204");
    b.goto(&room_url);
    b.wait_for(
        "document.documentElement.dataset.live === 'on'",
        Duration::from_secs(5),
    );
    assert_eq!(
        b.eval("document.getElementById('poste-b204-02').dataset.state"),
        json!("waiting")
    );
    b.eval(
        "window.__same_page = true; window.__seen = [];
         new MutationObserver(() => {
           const t = document.getElementById('poste-b204-02');
           const s = t.dataset.step + ':' + t.dataset.state;
           if (window.__seen[window.__seen.length - 1] !== s) window.__seen.push(s);
         }).observe(document.getElementById('postes'), { childList: true, subtree: true });
         true",
    );

    // A whole run of the room: the tile follows it without a reload.
    let mut master = ws
        .command(&["master", "b204"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("parc master");
    b.wait_for(
        "window.__seen.includes('deploy:running')",
        Duration::from_secs(120),
    );
    let shot = b.screenshot();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("console-salle.png");
    std::fs::write(&path, &shot).expect("write the screenshot");
    let drawn = drawn_share(&shot);
    assert!(
        drawn > 0.05,
        "the screenshot {} is blank ({:.1}% drawn)",
        path.display(),
        drawn * 100.0
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = master.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "parc master did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "parc master failed");
    b.wait_for(
        "document.getElementById('poste-b204-02').dataset.step === 'verify' \
         && document.getElementById('poste-b204-02').dataset.state === 'done'",
        Duration::from_secs(10),
    );
    assert_eq!(
        b.eval("window.__same_page === true"),
        json!(true),
        "reloaded"
    );
    let seen = b.eval("window.__seen");
    let seen: Vec<&str> = seen
        .as_array()
        .expect("seen")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    // In order, each seen as it happened (a step that ends as the next begins within one of
    // the console's looks at the live file may show only as the next).
    let at = |want: &str| {
        seen.iter()
            .position(|s| *s == want)
            .unwrap_or_else(|| panic!("{want} not seen live: {seen:?}"))
    };
    assert!(at("deploy:running") < at("verify:done"), "{seen:?}");
    let tile = b.eval("document.getElementById('poste-b204-02').innerText");
    assert!(
        tile.as_str().is_some_and(
            |t| t.contains("Vérifié : conforme") && t.contains("Domaine : LAB.TEST, OU=b204")
        ),
        "{tile}"
    );
    let banner = b.eval("document.getElementById('execution').innerText");
    assert!(
        banner
            .as_str()
            .is_some_and(|t| t.contains("n° 1 : terminé")),
        "{banner}"
    );

    // The reimage action: refused without the token or with a wrong one, nothing started.
    let post = |b: &mut Browser, body: &str| {
        b.eval(&format!(
            "fetch('/salles/b204/postes/b204-02/reimage', {{ method: 'POST',
               headers: {{ 'Content-Type': 'application/x-www-form-urlencoded' }},
               body: {body} }}).then(r => r.status)"
        ))
    };
    let deploys = |ws: &TestWs| {
        ws.effects()
            .iter()
            .filter(|(step, host, _)| step == "deploy" && host == "b204-02")
            .count()
    };
    let before = deploys(&ws);
    assert_eq!(post(&mut b, "''"), json!(403));
    assert_eq!(post(&mut b, "'jeton=0123'"), json!(403));
    let audit_rows = |ws: &TestWs| -> i64 {
        ws.audit_db()
            .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .expect("count")
    };
    let audited = audit_rows(&ws);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(deploys(&ws), before, "a refused action deployed");
    // With the token: audited, and the workstation is reimaged.
    assert_eq!(post(&mut b, &format!("'jeton={token}'")), json!(200));
    let asked: String = ws
        .audit_db()
        .query_row(
            "SELECT detail FROM entries WHERE action = 'reimage' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("the console's audit entry");
    assert!(asked.starts_with("asked from the console"), "{asked}");
    assert!(audit_rows(&ws) > audited);
    let deadline = Instant::now() + Duration::from_secs(60);
    while deploys(&ws) == before {
        assert!(
            Instant::now() < deadline,
            "the reimage never deployed b204-02"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The reports open: a fleet report and the run's verify report.
    b.goto(&format!("{url}/rapports"));
    let link = b.wait_for(
        "(document.querySelector('a[href^=\"/rapports/fichiers/verification-b204-\"]') || {}).href",
        Duration::from_secs(5),
    );
    b.goto(link.as_str().expect("href"));
    let report = b.eval("document.body.innerText");
    assert!(
        report
            .as_str()
            .is_some_and(|t| t.contains("b204-02") && t.contains("onforme")),
        "{report}"
    );
    // The room page carries the same conformity record: what was verified, by whom.
    b.goto(&room_url);
    let record = b.eval("document.getElementById('verification').innerText");
    let record = record.as_str().unwrap_or_default();
    for want in [
        "4 / 4 postes conformes",
        "Mme Durand (SVT",
        "OU=b204",
        "parc 0.",
    ] {
        assert!(
            record.contains(want),
            "{want} not in the room's record:\n{record}"
        );
    }
    b.goto(&format!("{url}/rapports/homogeneite"));
    let report = b.eval("document.body.innerText");
    assert!(
        report.as_str().is_some_and(|t| t.contains("b204")),
        "{report}"
    );

    // No page renders the secret.
    for page in [
        "/",
        "/salles/b204",
        "/executions",
        "/executions/1",
        "/audit",
        "/rapports",
        "/rapports/prelp",
    ] {
        b.goto(&format!("{url}{page}"));
        let html = b.eval("document.documentElement.outerHTML");
        assert!(
            html.as_str()
                .is_some_and(|h| h.len() > 200 && !h.contains(SECRET)),
            "{page} shows the secret or nothing"
        );
    }

    // The audit page: intact, then one entry edited behind parc's back shows as broken.
    b.goto(&format!("{url}/audit"));
    assert_eq!(
        b.eval("document.getElementById('chaine').dataset.intact"),
        json!("oui")
    );
    ws.audit_db()
        .execute(
            "UPDATE entries SET detail = detail || ' (edited)' WHERE seq = 2",
            [],
        )
        .expect("tamper");
    b.goto(&format!("{url}/audit"));
    assert_eq!(
        b.eval("document.getElementById('chaine').dataset.intact"),
        json!("non")
    );
    assert_eq!(
        b.eval("document.getElementById('audit-2').className"),
        json!("rompue")
    );
}
