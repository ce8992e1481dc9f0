//! The table of scenario fixtures: every valid one loads, every invalid one is
//! refused with the message its first line announces (`# expect: ...`),
//! naming the file, and with exit code 2.

mod common;

use std::path::{Path, PathBuf};
use twlab::scenario::Scenario;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = common::files_in(&format!("tests/fixtures/scenarios/{kind}"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(!files.is_empty(), "no yaml fixtures in {kind}");
    files
}

/// The `# expect:` line of an invalid fixture.
pub fn expected_message(path: &Path) -> String {
    common::expected_line(path)
}

#[test]
fn valid_fixtures_load() {
    for path in fixtures("valid") {
        if let Err(e) = Scenario::load(&path, &[]) {
            panic!("{} should be valid: {e}", path.display());
        }
    }
}

#[test]
fn invalid_fixtures_are_refused_with_their_message() {
    let mut failures = Vec::new();
    for path in fixtures("invalid") {
        let expected = expected_message(&path);
        match Scenario::load(&path, &[]) {
            Ok(_) => failures.push(format!("{}: accepted", path.display())),
            Err(e) => {
                let msg = e.to_string();
                if !msg.starts_with(&path.display().to_string()) || !msg.contains(&expected) {
                    failures.push(format!(
                        "{}:\n    expected: {expected}\n    got:      {msg}",
                        path.display()
                    ));
                }
                assert_eq!(e.exit_code(), 2, "{}", path.display());
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            n += 1;
            if let Err(e) = Scenario::load(&path, &[]) {
                panic!("{} should be valid: {e}", path.display());
            }
        }
    }
    assert!(n >= 7, "the scenario library has {n} files");
}
