//! Bad input exits 2 with a message naming the file, and nothing is started
//! or created: no run directory, no namespace.

mod common;

use common::{manifest_dir, twlab, twlab_namespaces};
use std::path::{Path, PathBuf};

fn invalid_fixtures() -> Vec<PathBuf> {
    let dir = manifest_dir().join("tests/fixtures/scenarios/invalid");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn expected(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("fixture")
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .expect("# expect: line")
        .to_string()
}

#[test]
fn every_bad_fixture_exits_2_before_anything_is_created() {
    let before = twlab_namespaces();
    let tmp = tempfile::tempdir().expect("tempdir");
    for fixture in invalid_fixtures() {
        let out_dir = tmp.path().join("run");
        let out = twlab()
            .arg("run")
            .arg(&fixture)
            .arg("--out")
            .arg(&out_dir)
            .output()
            .expect("twlab runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: {stderr}",
            fixture.display()
        );
        assert!(
            stderr.contains(&fixture.display().to_string()),
            "{}: {stderr}",
            fixture.display()
        );
        assert!(
            stderr.contains(&expected(&fixture)),
            "{}: {stderr}",
            fixture.display()
        );
        assert!(
            !out_dir.exists(),
            "{}: created {}",
            fixture.display(),
            out_dir.display()
        );
    }
    assert_eq!(twlab_namespaces(), before, "a namespace was created");
}

#[test]
fn validate_accepts_the_shipped_scenario_and_refuses_bad_ones() {
    let ok = twlab()
        .args(["validate", "scenarios/tw_reuse.yaml"])
        .current_dir(manifest_dir())
        .output()
        .expect("twlab runs");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("valid"));
    for fixture in invalid_fixtures() {
        let out = twlab()
            .arg("validate")
            .arg(&fixture)
            .output()
            .expect("twlab runs");
        assert_eq!(out.status.code(), Some(2), "{}", fixture.display());
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        vec!["run"],
        vec!["run", "scenarios/tw_reuse.yaml", "--bogus"],
        vec!["run", "scenarios/tw_reuse.yaml", "--set", "client.duration"],
        vec![
            "run",
            "scenarios/tw_reuse.yaml",
            "--set",
            "client.connections=0",
        ],
        vec!["run", "does/not/exist.yaml"],
        vec!["report", "does/not/exist"],
        vec!["load", "--target", "not-an-address"],
    ] {
        let out = twlab()
            .args(&args)
            .current_dir(manifest_dir())
            .output()
            .expect("twlab runs");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let out = twlab().arg("--help").output().expect("twlab runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0  done",
        "1  an expectation",
        "2  invalid input",
        "3  the environment",
        "130",
    ] {
        assert!(text.contains(line), "--help lacks `{line}`:\n{text}");
    }
}

#[test]
fn doctor_reports_every_check_and_leaves_nothing() {
    if !common::require_root("doctor_reports_every_check_and_leaves_nothing") {
        return;
    }
    let before = twlab_namespaces();
    let out = twlab().arg("doctor").output().expect("twlab doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    for check in [
        "root",
        "kernel",
        "ip",
        "nft",
        "conntrack",
        "wrk",
        "namespaces",
        "nf_conntrack",
    ] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(check)),
            "no `{check}` line:\n{text}"
        );
    }
    // CI installs everything the lab needs, so every check passes there.
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(!text.contains("FAIL"), "{text}");
    }
    assert_eq!(twlab_namespaces(), before, "doctor left a namespace behind");
}
