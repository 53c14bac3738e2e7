//! `parc hosts` without a lab: parc's own key is generated once into the workspace state
//! folder and printed; a host that does not answer is an internal failure, not a pin.

use std::os::unix::fs::PermissionsExt as _;

use assert_cmd::Command;

#[test]
fn key_is_generated_once_and_printed() {
    let ws = tempfile::tempdir().unwrap();
    let run = || {
        let out = Command::cargo_bin("parc")
            .unwrap()
            .args(["hosts", "key", "-w"])
            .arg(ws.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    assert!(first.starts_with("ssh-ed25519 "), "{first}");
    assert_eq!(run(), first, "the same key the second time");
    let key = ws.path().join(".parc/ssh/id_ed25519");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn trust_of_an_unreachable_host_pins_nothing() {
    let ws = tempfile::tempdir().unwrap();
    // Port 9 on loopback: nothing listens there.
    let out = Command::cargo_bin("parc")
        .unwrap()
        .args([
            "hosts",
            "trust",
            "localhost",
            "--address",
            "127.0.0.1",
            "--port",
            "9",
        ])
        .args(["--fingerprint", "SHA256:x", "-w"])
        .arg(ws.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: connecting to localhost (127.0.0.1:9)"),
        "{err}"
    );
    assert!(!ws.path().join(".parc/known_hosts").exists());
}
