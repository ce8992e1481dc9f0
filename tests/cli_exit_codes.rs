//! Bad input exits 2 with a message naming the file, and nothing is started
//! or created: no run directory, no namespace.

mod common;

use common::{manifest_dir, run_expecting, twlab, twlab_namespaces};
use std::path::{Path, PathBuf};

fn invalid_fixtures() -> Vec<PathBuf> {
    fixtures_in("tests/fixtures/scenarios/invalid")
}

fn fixtures_in(rel: &str) -> Vec<PathBuf> {
    let dir = manifest_dir().join(rel);
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
        "conntrack",
        "wrk",
        "ssh",
        "docker",
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

#[test]
fn every_bad_lab_file_exits_2_naming_its_line_before_anything_is_connected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let scenario = manifest_dir().join("scenarios/tw_reuse.yaml");
    let fixtures = fixtures_in("tests/fixtures/labs/invalid");
    assert!(fixtures.len() >= 5, "{fixtures:?}");
    for fixture in fixtures {
        let out_dir = tmp.path().join("run");
        let out = twlab()
            .env("TWLAB_STATE_DIR", &state)
            .arg("run")
            .arg(&scenario)
            .arg("--lab")
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
        let wanted = format!("{}{}", fixture.display(), expected(&fixture));
        assert!(
            stderr.contains(&wanted),
            "{}: wanted `{wanted}` in {stderr}",
            fixture.display()
        );
        assert!(
            !out_dir.exists(),
            "{}: created {}",
            fixture.display(),
            out_dir.display()
        );
        assert!(
            !state.exists(),
            "{}: a restore journal was started",
            fixture.display()
        );
    }
}

#[test]
fn a_docker_server_without_a_docker_lab_exits_2_at_its_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = manifest_dir().join("scenarios/tw_reuse_tomcat.yaml");
    let out = twlab()
        .arg("validate")
        .arg(&scenario)
        .output()
        .expect("twlab runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = std::fs::read_to_string(&scenario)
        .expect("scenario")
        .lines()
        .position(|l| l.trim() == "kind: docker")
        .expect("kind: docker line")
        + 1;
    assert!(
        stderr.contains(&format!(
            "{}:{line}: server.kind: docker",
            scenario.display()
        )),
        "{stderr}"
    );
    // A lab whose server host has no Docker engine is refused the same way.
    let lab = tmp.path().join("lab.yaml");
    std::fs::write(
        &lab,
        "hosts:\n  server:\n    address: 127.0.0.1\n  client: {}\n",
    )
    .expect("lab");
    let out = twlab()
        .arg("run")
        .arg(&scenario)
        .arg("--lab")
        .arg(&lab)
        .arg("--out")
        .arg(tmp.path().join("run"))
        .output()
        .expect("twlab runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!tmp.path().join("run").exists());
    // With a Docker lab the scenario is valid.
    std::fs::write(
        &lab,
        "hosts:\n  server:\n    address: 127.0.0.1\n    docker: true\n  client: {}\n",
    )
    .expect("lab");
    common::run_expecting(
        twlab()
            .arg("validate")
            .arg(&scenario)
            .arg("--lab")
            .arg(&lab),
        0,
    );
}

/// `twlab report DIR --html` renders every format from `summary.json`
/// alone: the same `report.md` a run writes, and the HTML page.
#[test]
fn report_rerenders_from_the_summary_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    std::fs::create_dir(&dir).expect("run dir");
    std::fs::copy(
        manifest_dir().join("tests/fixtures/compare/kernel-6.18/summary.json"),
        dir.join("summary.json"),
    )
    .expect("summary.json");
    let out = run_expecting(twlab().arg("report").arg(&dir).arg("--html"), 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: Vec<&str> = stdout.lines().collect();
    let (md, page) = (dir.join("report.md"), dir.join("report.html"));
    assert_eq!(
        printed,
        [md.display().to_string(), page.display().to_string()],
        "{stdout}"
    );
    let summary = twlab::results::read_summary(&dir).expect("summary");
    assert_eq!(
        std::fs::read_to_string(&md).expect("report.md"),
        twlab::output::report::render_markdown(&summary)
    );
    let html = std::fs::read_to_string(&page).expect("report.html");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");

    // A report.md that cannot be written is the environment's failure
    // (exit 3), and the message names it.
    std::fs::remove_file(&md).expect("remove report.md");
    std::fs::create_dir(&md).expect("a directory in its place");
    let out = run_expecting(twlab().arg("report").arg(&dir), 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&md.display().to_string()), "{stderr}");
}
