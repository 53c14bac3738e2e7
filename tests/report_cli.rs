//! `parc report …` as a user runs it: on a small hand-made lycée (exact figures) and on the
//! shipped example workspace (sensible output), in every format; bad input exits 2.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

const SITE: &str = "[lycee]\nname = \"Lycée Test\"\nuai = \"0840001A\"\nsector = \"Avignon\"\n\n\
[domain]\nrealm = \"TEST.LAN\"\nnetbios = \"TEST\"\ncomputers_ou = \"OU=Salles,DC=test,DC=lan\"\njoin_account = \"join\"\n\n\
[endpoint]\nkind = \"pxe\"\naddress = \"10.0.0.1\"\n";

fn model(id: &str, year: u32, cpu: u32, ram: u32) -> String {
    format!(
        "[[model]]\nid = \"{id}\"\nmanufacturer = \"Dell\"\nname = \"{id}\"\nform_factor = \"desktop\"\nyear = {year}\n\
         cpu = \"x\"\ncpu_score = {cpu}\nram_gb = {ram}\ndisk_type = \"ssd\"\ndisk_gb = 256\ngpu = \"intel\"\n\n"
    )
}

fn room(id: &str, model: &str, ram: u32) -> String {
    format!(
        "id = \"{id}\"\nname = \"Salle {id}\"\nmodel = \"{model}\"\n\n[os]\nfamily = \"linux\"\nbase_image = \"debian-12\"\n\n\
         [requirements]\nmin_ram_gb = {ram}\n"
    )
}

/// cao (6 × m2020, 16 GB) needs 32 GB; bur (4 × m2012, 4 GB) needs 8 GB: cao's machines go
/// to bur, cao is equipped new, bur's machines are scrapped.
fn small() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("site.toml"), SITE).unwrap();
    std::fs::write(
        d.path().join("models.toml"),
        model("m2020", 2020, 9000, 16) + &model("m2012", 2012, 2000, 4),
    )
    .unwrap();
    std::fs::create_dir(d.path().join("rooms")).unwrap();
    std::fs::write(d.path().join("rooms/cao.toml"), room("cao", "m2020", 32)).unwrap();
    std::fs::write(d.path().join("rooms/bur.toml"), room("bur", "m2012", 8)).unwrap();
    let mut csv =
        String::from("room;hostname;mac;serial;model;purchase_date;warranty_end;funding;state\n");
    for i in 1..=6 {
        csv += &format!(
            "cao;cao-pc{i};52:54:00:00:01:0{i};C{i};m2020;2020-09-01;;region;in-service\n"
        );
    }
    for i in 1..=4 {
        csv += &format!(
            "bur;bur-pc{i};52:54:00:00:02:0{i};B{i};m2012;2012-09-01;;region;in-service\n"
        );
    }
    std::fs::write(d.path().join("devices.csv"), csv).unwrap();
    d
}

fn report(ws: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("parc")
        .unwrap()
        .args(["report"])
        .args(args)
        .args(["-w", ws.to_str().unwrap(), "--today", "2027-02-15"])
        .assert()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

#[test]
fn rotation_and_prelp_of_a_small_lycee() {
    let ws = small();
    let a = report(ws.path(), &["rotation", "--format", "json"]).success();
    let v: Value = serde_json::from_str(&stdout(&a)).unwrap();
    let p = &v["plan"];
    assert_eq!(p["moves"][0]["from_room"], "cao");
    assert_eq!(p["moves"][0]["to_room"], "bur");
    assert_eq!(p["moves"][0]["count"], 4);
    assert_eq!(p["purchases"], 6);
    assert_eq!(p["baseline_purchases"], 10);
    assert_eq!(p["spare"].as_array().unwrap().len(), 2);
    assert_eq!(p["scrapped"].as_array().unwrap().len(), 4);

    let a = report(ws.path(), &["prelp", "--year", "2027", "--format", "csv"]).success();
    let csv = stdout(&a);
    let csv = csv
        .strip_prefix('\u{feff}')
        .expect("a byte-order mark for Excel");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "Salle;Type de poste;Quantité;Nature;Priorité;Besoins;Justification"
    );
    assert!(
        lines[1].starts_with(
            "cao (Salle cao);poste fixe;6;renouvellement avec rotation;haute;32 Go de mémoire;"
        ),
        "{csv}"
    );
    assert_eq!(lines.len(), 2, "{csv}");
}

#[test]
fn homogeneity_of_a_sector() {
    let (a, b) = (small(), small());
    let a = Command::cargo_bin("parc")
        .unwrap()
        .args([
            "report",
            "homogeneity",
            "--format",
            "json",
            "--today",
            "2027-02-15",
            "-w",
        ])
        .arg(a.path())
        .arg("-w")
        .arg(b.path())
        .assert()
        .success();
    let v: Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert_eq!(v["homogeneity"]["lycees"].as_array().unwrap().len(), 2);
    assert_eq!(v["homogeneity"]["workstations"], 20);
    assert_eq!(v["homogeneity"]["score"], 100.0);
    assert_eq!(v["homogeneity"]["distinct_models"], 2);
}

#[test]
fn html_is_one_self_contained_file() {
    let ws = small();
    let out = ws.path().join("prelp.html");
    report(
        ws.path(),
        &["prelp", "--format", "html", "-o", out.to_str().unwrap()],
    )
    .success();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
    assert!(html.contains("Demande PRELP 2027 — Lycée Test"));
    assert!(html.contains("5 jours ouvrés"));
}

#[test]
fn bad_input_exits_2() {
    let (a, b) = (small(), small());
    let out = Command::cargo_bin("parc")
        .unwrap()
        .args(["report", "-w"])
        .arg(a.path())
        .arg("-w")
        .arg(b.path())
        .arg("rotation")
        .assert()
        .code(2);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("covers one lycée"));
    Command::cargo_bin("parc")
        .unwrap()
        .args(["report", "renewal", "--today", "2027-13-01", "-w"])
        .arg(a.path())
        .assert()
        .code(2);
    std::fs::write(a.path().join("devices.csv"), "room;hostname\nx;y\n").unwrap();
    let out = report(a.path(), &["renewal"]).code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("devices.csv:1:1") && err.contains("error: cannot read workspace"),
        "{err}"
    );
}

#[test]
fn the_example_workspace_gives_sensible_reports() {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/lycee-mistral");
    let a = report(&ws, &["rotation", "--format", "json"]).success();
    let v: Value = serde_json::from_str(&stdout(&a)).unwrap();
    // The CAD room's model no longer fits (README): it is equipped new, its machines reused.
    assert_eq!(v["plan"]["to_equip"][0]["room"], "c112");
    assert_eq!(v["plan"]["moves"][0]["from_room"], "c112");
    let a = report(&ws, &["homogeneity", "--format", "md"]).success();
    assert!(stdout(&a).contains("la salle cdi n'est pas homogène"));
    for kind in ["renewal", "prelp"] {
        for f in ["html", "csv", "md", "json"] {
            report(&ws, &[kind, "--format", f]).success();
        }
    }
}
