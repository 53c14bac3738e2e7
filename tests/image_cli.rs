//! `parc image …` as a user runs it, on an empty workspace (no root needed).

use assert_cmd::Command;

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
