//! `parc image …` as a user runs it, on an empty workspace (no root needed).

use assert_cmd::Command;
use parc::fsutil::copy_tree;

fn parc(ws: &std::path::Path, args: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("parc")
        .unwrap()
        .args(args)
        .arg("-w")
        .arg(ws)
        .assert()
}

#[test]
fn unknown_image_is_a_user_error_with_a_hint() {
    let ws = tempfile::tempdir().unwrap();
    let out = parc(ws.path(), &["image", "show", "b204/v1"]).code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.starts_with("error: image b204/v1 does not exist"),
        "{err}"
    );
    assert!(err.contains("hint: `parc image list`"), "{err}");
    let out = parc(ws.path(), &["image", "verify", "not-an-id"]).code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("`not-an-id` is not an image id"), "{err}");
}

#[test]
fn empty_store_lists_nothing_and_verifies_nothing() {
    let ws = tempfile::tempdir().unwrap();
    let out = parc(ws.path(), &["image", "list"]).success();
    assert!(out.get_output().stdout.is_empty());
    parc(ws.path(), &["image", "verify", "--all"]).success();
    parc(ws.path(), &["image", "prune", "--keep", "1"]).success();
}

/// A deploy record naming index digest `sha256:<n repeated>`.
/// The engine tests' workspace, copied under `dir`.
fn engine_ws(dir: &std::path::Path) -> std::path::PathBuf {
    let ws = dir.join("ws");
    copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine-ws"),
        &ws,
    )
    .unwrap();
    ws
}

fn write_file(p: &std::path::Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn record(n: u8) -> Vec<u8> {
    parc::image::record::DeployRecord {
        index: format!("sha256:{}", format!("{n:02x}").repeat(32)),
        fs_made: 1,
        entries: Vec::new(),
    }
    .encode()
}

#[test]
fn prune_removes_the_deploy_records_that_can_no_longer_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = engine_ws(tmp.path());
    let records = ws.join(".parc/boot/records");
    let put = |rel: &str, bytes: &[u8]| write_file(&records.join(rel), bytes);
    // No image names these digests (the store is empty): every record is of a pruned image.
    put("b204-02/1.rec.zst", &record(1));
    put("b204-02/2.rec.zst", b"not a record");
    // A deploy writing its record right now, and a file that is no record: both stay.
    put("b204-03/1.rec.part", b"half");
    put("b204-03/notes.txt", b"kept");
    // A host that devices.csv does not name (any more).
    put("b204-77/1.rec.zst", &record(1));
    let removed_bytes = [
        "b204-02/1.rec.zst",
        "b204-02/2.rec.zst",
        "b204-77/1.rec.zst",
    ]
    .iter()
    .map(|r| std::fs::metadata(records.join(r)).unwrap().len())
    .sum::<u64>();
    let out = parc(&ws, &["image", "prune", "--keep", "1"]).success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let mib = removed_bytes as f64 / (1u64 << 20) as f64;
    assert!(
        stdout.contains(&format!(
            "removed\t3 deploy records that can no longer serve\t{mib:.1} MiB\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("removed\tthe deploy records of b204-77 (not in devices.csv)\n"),
        "{stdout}"
    );
    assert!(!records.join("b204-77").exists());
    assert!(!records.join("b204-02/1.rec.zst").exists());
    assert!(!records.join("b204-02/2.rec.zst").exists());
    assert!(records.join("b204-03/1.rec.part").is_file());
    assert!(records.join("b204-03/notes.txt").is_file());
    // Nothing left to remove: nothing said.
    let out = parc(&ws, &["image", "prune", "--keep", "1"]).success();
    assert!(out.get_output().stdout.is_empty());
}

#[test]
fn prune_refuses_a_devices_csv_with_errors_before_removing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = engine_ws(tmp.path());
    let csv = ws.join("devices.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("b204;b204-99;not-a-mac;SN;optiplex-7010;2023-10-15;region;in-service;;\n");
    std::fs::write(&csv, text).unwrap();
    let rec = ws.join(".parc/boot/records/b204-02/1.rec.zst");
    write_file(&rec, &record(1));
    let out = parc(&ws, &["image", "prune", "--keep", "1"]).code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.starts_with("error: devices.csv has 1 error(s): nothing was pruned"),
        "{err}"
    );
    assert!(err.contains("hint: fix devices.csv"), "{err}");
    assert!(rec.is_file());
}

#[test]
fn prune_help_mentions_the_deploy_records() {
    let out = Command::cargo_bin("parc")
        .unwrap()
        .args(["image", "prune", "--help"])
        .assert()
        .success();
    let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(help.contains("deploy records"), "{help}");
}
