//! Property tests of the parsers (the fuzzing of issue 2): arbitrary text and random mutations
//! of the example workspace's real files never panic, and every finding points inside its file.
//!
//! Longer runs: `PROPTEST_CASES=200000 cargo test --release --test parser_props`.

use parc::domain::finding::{Finding, Source};
use parc::domain::{device, model, recipe, site};
use proptest::prelude::*;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/recipes/lycee-mistral");

fn example(rel: &str) -> String {
    std::fs::read_to_string(format!("{EXAMPLE}/{rel}")).unwrap()
}

/// Every finding is located inside the text (or on the file as a whole).
fn located_inside(src: &Source, findings: &[Finding]) -> Result<(), TestCaseError> {
    let lines = src.text.split('\n').count();
    for f in findings {
        prop_assert_eq!(&f.location.file, &src.name);
        if f.location.line > 0 {
            prop_assert!(f.location.line <= lines, "{} beyond {} lines", f, lines);
            let line = src.text.split('\n').nth(f.location.line - 1).unwrap_or("");
            prop_assert!(
                f.location.col >= 1 && f.location.col <= line.chars().count() + 1,
                "{} off its line",
                f
            );
        }
    }
    Ok(())
}

fn parse_all(name: &str, text: String) -> Result<(), TestCaseError> {
    let src = Source::new(name, text);
    let findings = match name {
        "site.toml" => site::parse(&src).1,
        "models.toml" => model::parse(&src).1,
        "devices.csv" => device::parse(&src).1,
        _ => recipe::parse(&src).1,
    };
    located_inside(&src, &findings)
}

/// A mutation: at a position, delete some bytes and insert some text.
fn mutate(text: &str, at: usize, del: usize, insert: &str) -> String {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let mut end = (at + del).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    format!("{}{}{}", &text[..at], insert, &text[end..])
}

const FILES: &[&str] = &[
    "site.toml",
    "models.toml",
    "devices.csv",
    "rooms/c112.toml",
    "rooms/labo.toml",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(which in 0..FILES.len(), text in "\\PC*") {
        parse_all(FILES[which], text)?;
    }

    #[test]
    fn toml_shaped_text_never_panics(which in 0..FILES.len(),
        text in "(\\[\\[?[a-z]{1,8}\\]\\]?\n|[a-z_]{1,10} = (\"[^\"\n]{0,12}\"|[0-9-]{1,10}|\\{ secret = \"x\" \\}|true|\\[\"a\", 1\\])\n){0,20}") {
        parse_all(FILES[which], text)?;
    }

    #[test]
    fn mutated_example_files_never_panic(which in 0..FILES.len(), at in any::<usize>(), del in 0usize..12,
        insert in prop_oneof![Just(String::new()), Just(";".to_string()), Just("\"".to_string()),
            Just("\n".to_string()), Just("= ".to_string()), Just("[[".to_string()), "\\PC{0,6}"]) {
        let text = example(FILES[which]);
        parse_all(FILES[which], mutate(&text, at, del, &insert))?;
    }
}
