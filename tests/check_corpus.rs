//! The corpus of broken workspaces: each `tests/check-corpus/cases/<case>.toml` edits a copy
//! of the clean `tests/check-corpus/base/` workspace in one way and says what `parc check` must
//! print (the first line of every finding, with file:line:col) and its exit status.
//!
//! `PARC_BLESS=1 cargo test --test check_corpus` rewrites the expectations from the actual
//! output; review the diff before committing it.

use parc::fsutil::copy_tree;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check-corpus")
}

/// Applies one `[[edit]]` of a case to the workspace copy.
fn apply(ws: &Path, case: &str, edit: &toml::Table) {
    let file = ws.join(edit["file"].as_str().unwrap());
    if edit.get("delete").and_then(|v| v.as_bool()) == Some(true) {
        std::fs::remove_file(&file).unwrap();
    } else if let Some(w) = edit.get("write") {
        std::fs::write(&file, w.as_str().unwrap()).unwrap();
    } else if let Some(a) = edit.get("append") {
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str(a.as_str().unwrap());
        std::fs::write(&file, text).unwrap();
    } else if let Some(a) = edit.get("append_latin1") {
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend(
            a.as_str()
                .unwrap()
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap()),
        );
        std::fs::write(&file, bytes).unwrap();
    } else {
        let (from, to) = (
            edit["replace"].as_str().unwrap(),
            edit["with"].as_str().unwrap(),
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(from),
            "case {case}: {from:?} is not in {}",
            file.display()
        );
        std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
    }
}

/// The first line of each finding (`file:line:col: severity: message`).
fn finding_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| {
            !l.starts_with(' ')
                && !l.starts_with("parc check:")
                && (l.contains(": error: ") || l.contains(": warning: "))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_broken_workspace_yields_its_finding() {
    let bless = std::env::var_os("PARC_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 25,
        "the corpus has only {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for path in &cases {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let case: toml::Table = toml::from_str(&text).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        copy_tree(&corpus().join("base"), &ws).unwrap();
        for edit in case["edit"].as_array().unwrap() {
            apply(&ws, &name, edit.as_table().unwrap());
        }
        let out = Command::new(env!("CARGO_BIN_EXE_parc"))
            .args(["check", "--today", "2026-11-22"])
            .arg(&ws)
            .current_dir(tmp.path())
            .env_remove("PARC_WORKSPACE")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code().unwrap_or(-1);
        let actual: Vec<String> = finding_lines(&stdout)
            .iter()
            .map(|l| l.replacen(&format!("{}/", ws.display()), "", 1))
            .collect();
        assert!(
            !stderr.contains("panicked"),
            "case {name} panicked:\n{stderr}"
        );
        if bless {
            let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
            doc["expect"]["exit"] = toml_edit::value(i64::from(code));
            let mut arr = toml_edit::Array::new();
            for l in &actual {
                arr.push_formatted(toml_edit::Value::from(l.as_str()).decorated("\n  ", ""));
            }
            arr.set_trailing("\n");
            arr.set_trailing_comma(true);
            doc["expect"]["findings"] = toml_edit::value(arr);
            std::fs::write(path, doc.to_string()).unwrap();
            continue;
        }
        let expect = case["expect"].as_table().unwrap();
        let want_code = expect["exit"].as_integer().unwrap() as i32;
        let want: Vec<String> = expect["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        if want_code != code || want != actual {
            failures.push(format!(
                "case {name}: expected exit {want_code} and\n  {}\ngot exit {code} and\n  {}\nstderr: {stderr}",
                want.join("\n  "),
                actual.join("\n  ")
            ));
        }
        // A broken workspace must never be a clean one: every case has a finding or exit 2.
        assert!(
            !want.is_empty() || want_code == 2,
            "case {name} expects nothing"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_base_workspace_is_clean() {
    let out = Command::new(env!("CARGO_BIN_EXE_parc"))
        .args(["check", "--today", "2026-11-22"])
        .arg(corpus().join("base"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(finding_lines(&String::from_utf8_lossy(&out.stdout)).is_empty());
}
