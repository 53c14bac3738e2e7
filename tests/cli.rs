//! The binary as a technician uses it: sign-off round trip, secrets, exit statuses.

use parc::fsutil::copy_tree;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/recipes/lycee-mistral");

fn example_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("lycee");
    copy_tree(Path::new(EXAMPLE), &ws).unwrap();
    (tmp, ws)
}

fn parc(args: &[&str], ws: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parc"))
        .args(args)
        .env("PARC_WORKSPACE", ws)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The teachers' sign-off of room labo, as the tests record it.
const SIGNOFF_LABO: [&str; 8] = [
    "signoff",
    "labo",
    "--teacher",
    "Mme Claire Martin",
    "--discipline",
    "Mathématiques",
    "--date",
    "2026-11-20",
];

#[test]
fn changing_a_version_voids_the_signoff_until_signed_again() {
    let (_tmp, ws) = example_copy();
    let ws_s = ws.to_str().unwrap();
    let before = parc(&["check", ws_s, "--today", "2026-11-22"], &ws);
    assert!(!text(&before).contains("signoff"), "{}", text(&before));
    assert!(
        !text(&before).contains("the list changed"),
        "{}",
        text(&before)
    );

    let room = ws.join("rooms/labo.toml");
    let recipe = std::fs::read_to_string(&room).unwrap();
    std::fs::write(
        &room,
        recipe.replace("version = \"2.1.0-1\"", "version = \"2.1.1-1\""),
    )
    .unwrap();
    let after = parc(&["check", ws_s, "--today", "2026-11-22"], &ws);
    assert_eq!(after.status.code(), Some(1));
    assert!(
        text(&after).contains("rooms/labo.toml:")
            && text(&after).contains(
                "error: room labo: the list changed since Mme Claire Martin signed on 2026-10-01"
            ),
        "{}",
        text(&after)
    );

    let sign = parc(&SIGNOFF_LABO, &ws);
    assert_eq!(sign.status.code(), Some(0), "{}", text(&sign));
    let again = parc(&["check", ws_s, "--today", "2026-11-22"], &ws);
    assert!(
        !text(&again).contains("the list changed"),
        "{}",
        text(&again)
    );
    // The sign-off is in the audit log, and the chain verifies.
    let audit = parc(&["audit", "--room", "labo"], &ws);
    assert!(
        text(&audit).contains("Mme Claire Martin (Mathématiques)"),
        "{}",
        text(&audit)
    );
    assert_eq!(parc(&["audit", "verify"], &ws).status.code(), Some(0));
    // The recipe keeps its comments and its earlier sign-off as history.
    let signed = std::fs::read_to_string(&room).unwrap();
    assert!(signed.starts_with("# Salle du labo"));
    assert_eq!(signed.matches("[[signoff]]").count(), 2);
    // The only remaining error is the example's intended one (c112 fit).
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        text(&again).matches(": error: ").count(),
        1,
        "{}",
        text(&again)
    );
}

#[test]
fn secrets_are_read_from_stdin_and_never_shown() {
    let (_tmp, ws) = example_copy();
    let value = "Tr3s-S3cret-Join-Pa55";
    let mut child = Command::new(env!("CARGO_BIN_EXE_parc"))
        .args(["secret", "set", "domain-join"])
        .env("PARC_WORKSPACE", &ws)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(value));

    let stored = ws.join(".parc/secrets/domain-join");
    assert_eq!(
        std::fs::read_to_string(&stored).unwrap(),
        value,
        "one trailing newline is dropped"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let list = parc(&["secret", "list"], &ws);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "domain-join\n");
    let ws_s = ws.to_str().unwrap();
    for args in [
        vec!["check", ws_s, "--json"],
        vec!["check", ws_s],
        vec!["software", "labo"],
        vec!["secret", "list"],
    ] {
        let o = parc(&args, &ws);
        assert!(!text(&o).contains(value), "{args:?} printed the secret");
    }
    // The store now holds it: no more "not set" warning for it.
    assert!(!text(&parc(&["check", ws_s], &ws)).contains("secret \"domain-join\" is not set"));
    // An empty value and a bad name are refused (exit 2), nothing stored.
    let bad = parc(&["secret", "set", "../escape"], &ws);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn unusable_input_exits_2_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("nowhere");
    let o = parc(&["check", nowhere.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).starts_with("error: workspace ") && text(&o).contains("does not exist"),
        "{}",
        text(&o)
    );

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = parc(&["check", empty.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("is not a parc workspace"), "{}", text(&o));

    let (_t, ws) = example_copy();
    let o = parc(&["software", "lab0"], &ws);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("room \"lab0\" has no recipe")
            && text(&o).contains("hint: did you mean \"labo\"?"),
        "{}",
        text(&o)
    );
    // A sign-off for a broken recipe is refused, and the file is left as it was.
    let room = ws.join("rooms/cdi.toml");
    let broken = std::fs::read_to_string(&room)
        .unwrap()
        .replace("name = \"VLC\"", "name = VLC");
    std::fs::write(&room, &broken).unwrap();
    let o = parc(
        &[
            "signoff",
            "cdi",
            "--teacher",
            "X",
            "--discipline",
            "Documentation",
        ],
        &ws,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("rooms/cdi.toml:"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&room).unwrap(), broken);
}

#[test]
fn json_output_parses_and_locates_findings() {
    let o = parc(
        &["check", EXAMPLE, "--json", "--today", "2026-11-22"],
        Path::new(EXAMPLE),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["errors"], 1);
    let f = v["findings"].as_array().unwrap();
    let fit = f.iter().find(|f| f["rule"] == "fit").unwrap();
    assert!(fit["file"].as_str().unwrap().ends_with("rooms/c112.toml"));
    assert_eq!(fit["line"], 8);
    assert_eq!(fit["col"], 9);
}

#[test]
fn the_example_shows_exactly_its_documented_findings() {
    let (_tmp, ws) = example_copy();
    let o = parc(
        &[
            "check",
            ws.to_str().unwrap(),
            "--json",
            "--today",
            "2026-11-22",
        ],
        &ws,
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut rules: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["severity"].as_str().unwrap(),
                f["rule"].as_str().unwrap()
            )
        })
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            "error:fit",
            "warning:heterogeneous-room",
            "warning:licence-authorised",
            "warning:secret-missing",
            "warning:secret-missing",
            "warning:secret-missing",
            "warning:secret-missing"
        ]
    );
}

#[test]
fn master_refuses_a_room_that_breaks_the_rules_and_touches_nothing() {
    let (tmp, ws) = example_copy();
    let fakes = tmp.path().join("fakes");
    std::fs::create_dir_all(&fakes).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_parc"))
        .args(["master", "c112"])
        .env("PARC_WORKSPACE", &ws)
        .env("PARC_ADAPTERS", format!("fake:{}", fakes.display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("rooms/c112.toml:8:9: error: model \"precision-3630\" does not meet"),
        "{}",
        text(&o)
    );
    assert!(
        !ws.join(".parc/journal.db").exists(),
        "a refused run starts no journal"
    );
    assert!(
        !fakes.join("effects.log").exists(),
        "a refused run has no effect"
    );
}

#[test]
fn dry_run_plans_without_any_machine() {
    let (_tmp, ws) = example_copy();
    let o = Command::new(env!("CARGO_BIN_EXE_parc"))
        .args(["master", "labo", "--dry-run"])
        .env("PARC_WORKSPACE", &ws)
        .env_remove("PARC_ADAPTERS")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for step in ["collect", "format", "install", "test", "capture"] {
        assert!(
            out.lines().any(|l| l.starts_with(step)),
            "{step} missing from\n{out}"
        );
    }
    for host in ["labo-pc01", "labo-pc02", "labo-pc03", "labo-pc04"] {
        assert!(
            out.contains(&format!("deploy   {host}")),
            "{host} missing from\n{out}"
        );
    }
}

/// b204 runs Windows 11: the dry run plans all eight steps, nothing blocked for being Windows
/// (capture waits only for the teachers' sign-off, as on Linux), nothing "not wired".
#[test]
fn a_windows_room_dry_run_plans_all_eight_steps() {
    let (_tmp, ws) = example_copy();
    let o = Command::new(env!("CARGO_BIN_EXE_parc"))
        .args(["master", "b204", "--dry-run", "--json"])
        .env("PARC_WORKSPACE", &ws)
        .env_remove("PARC_ADAPTERS")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |step: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|l| l["step"] == step).collect()
    };
    for step in [
        "collect", "format", "install", "test", "capture", "deploy", "join", "verify",
    ] {
        let ls = of(step);
        assert!(!ls.is_empty(), "{step} is not planned");
        for l in ls {
            let why = l["why"].as_str().unwrap_or_default();
            assert!(
                !why.contains("Windows") && !why.contains("not wired"),
                "{step}: {l}"
            );
        }
    }
    for step in ["collect", "format", "install", "test"] {
        assert!(of(step).iter().all(|l| l["action"] == "run"), "{step}");
    }
    assert_eq!(of("deploy").len(), 15);
    assert_eq!(of("verify").len(), 15);
}

#[test]
fn a_signoff_the_audit_log_cannot_record_leaves_the_recipe_unchanged() {
    let (_tmp, ws) = example_copy();
    let room = ws.join("rooms/labo.toml");
    let before = std::fs::read_to_string(&room).unwrap();
    std::fs::write(
        &room,
        before.replace("version = \"2.1.0-1\"", "version = \"2.1.1-1\""),
    )
    .unwrap();
    let changed = std::fs::read_to_string(&room).unwrap();
    // An audit database that cannot be opened.
    std::fs::create_dir_all(ws.join(".parc/audit.db")).unwrap();
    let o = parc(&SIGNOFF_LABO, &ws);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("rooms/labo.toml is unchanged"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_to_string(&room).unwrap(), changed);
}

/// The example lycée on this machine, which is not on its network: `parc master b204` runs the
/// pre-flight, says what is missing here (its serving address, hence no DHCP or DC checks:
/// nothing is sent), and refuses with exit 2 before anything is journaled; `parc doctor`
/// prints the same checks and exits 1.
#[test]
fn master_on_the_example_lycee_reports_what_this_machine_lacks() {
    let (_tmp, ws) = example_copy();
    let o = Command::new(env!("CARGO_BIN_EXE_parc"))
        .args(["master", "b204"])
        .env("PARC_WORKSPACE", &ws)
        .env_remove("PARC_ADAPTERS")
        .env_remove("PARC_LAB")
        .env_remove("PARC_BOOTENV")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("not wired"), "{err}");
    for want in [
        "pre-flight: problem address       10.49.0.2 (site.toml [endpoint] address) is not an address of this machine",
        "pre-flight: skipped dhcp",
        "pre-flight: skipped dc ",
        "pre-flight: problem secrets       the join password (secret `domain-join`) is not set",
        "pre-flight: problem secrets       the DC account's password (secret `domain-admin`) is not set",
        "pre-flight: ok      workstations  15 workstations of room b204",
        "no boot environment given",
        "nothing was touched",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(
        !ws.join(".parc").exists(),
        "the refused run left state behind"
    );

    let o = parc(&["doctor", "b204"], &ws);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines().any(|l| l.starts_with("problem address")),
        "{out}"
    );
    let o = parc(&["doctor", "b204", "--json"], &ws);
    let checks: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "dhcp" && c["verdict"] == "skipped"),
        "{checks:?}"
    );
}

#[test]
fn reimage_help_offers_read_all() {
    let (_tmp, ws) = example_copy();
    let o = parc(&["reimage", "--help"], &ws);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.lines()
            .any(|l| l.trim_start().starts_with("--read-all")),
        "{help}"
    );
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("Read every file of each workstation's disk rather than trust the record of its last deploy"),
        "{help}"
    );
}
