//! Golden files of the rendered scripts: `check` compares a rendering with its file under the
//! repository; `PARC_BLESS=1 cargo test --lib` rewrites the files instead (review the diff).

/// Asserts `actual` is the content of `path` (relative to the repository root).
pub fn check(path: &str, actual: &str) {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("PARC_BLESS").is_some() {
        std::fs::write(&full, actual).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    }
    let expected = std::fs::read_to_string(&full)
        .unwrap_or_else(|e| panic!("{}: {e} (PARC_BLESS=1 writes it)", full.display()));
    assert_eq!(
        actual, expected,
        "{path} differs (PARC_BLESS=1 rewrites it)"
    );
}
