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
        // An empty value is refused, not the default (issue 23, item 7).
        vec![
            "validate",
            "scenarios/tw_reuse.yaml",
            "--set",
            "client.duration=",
        ],
        vec![
            "validate",
            "scenarios/tw_reuse.yaml",
            "--set",
            "client.duration=~",
        ],
        vec![
            "validate",
            "scenarios/tw_reuse.yaml",
            "--set",
            "client.duration=null",
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

    // A report.md that cannot be written is refused before anything is
    // written (exit 2; the HTML page is left as it was), naming it.
    std::fs::remove_file(&md).expect("remove report.md");
    std::fs::create_dir(&md).expect("a directory in its place");
    std::fs::write(&page, "old").expect("report.html");
    let out = run_expecting(twlab().arg("report").arg(&dir).arg("--html"), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{} is a directory", md.display())),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&page).expect("page"), "old");
    // A report.md that is a link to the summary it is rendered from.
    std::fs::remove_dir(&md).expect("rmdir");
    std::os::unix::fs::symlink(dir.join("summary.json"), &md).expect("symlink");
    let out = run_expecting(twlab().arg("report").arg(&dir), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("which this command reads"), "{stderr}");
    assert!(
        twlab::results::read_summary(&dir).is_ok(),
        "summary.json kept"
    );
}

/// A valid scenario whose run stops at the preflight (exit 3, before a
/// run directory or a lab exists): its server program does not exist. A
/// test of a check that must come before the run uses it, so that without
/// the check the run fails harmlessly instead of building a lab.
const NEVER_RUNS: &str = "name: never-runs
server:
  kind: command
  command: [/nonexistent/twlab-never-runs]
  port: 8080
client:
  duration: 1s
variants:
  - name: a
";

/// Every path a command writes is checked before it starts: `run --junit`
/// that cannot be written or is the scenario, exit 2 before a run
/// directory or anything else exists (it used to be exit 3 after the run).
#[test]
fn run_junit_is_checked_before_the_run_starts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("s.yaml");
    std::fs::write(&scenario, NEVER_RUNS).expect("scenario");
    let a_file = tmp.path().join("file");
    std::fs::write(&a_file, "x").expect("file");
    let cases: [(&Path, &str); 5] = [
        (
            Path::new("/nonexistent/dir/j.xml"),
            "/nonexistent/dir does not exist",
        ),
        (tmp.path(), "is a directory"),
        (&a_file.join("j.xml"), "is not a directory"),
        (Path::new("/dev/full"), "refuses every write"),
        (&scenario, "which this command reads"),
    ];
    for (junit, want) in cases {
        let cwd = tempfile::tempdir().expect("cwd");
        let out = run_expecting(
            twlab()
                .current_dir(cwd.path())
                .args(["run", "--junit"])
                .arg(junit)
                .arg(&scenario),
            2,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--junit") && stderr.contains(want),
            "{}: {stderr}",
            junit.display()
        );
        let left: Vec<_> = std::fs::read_dir(cwd.path())
            .expect("cwd")
            .flatten()
            .collect();
        assert!(left.is_empty(), "{}: left {left:?}", junit.display());
    }
    assert_eq!(
        std::fs::read_to_string(&scenario).expect("scenario"),
        NEVER_RUNS
    );
    // In the new --out directory, a file of the run's own is refused.
    let cwd = tempfile::tempdir().expect("cwd");
    let run_dir = cwd.path().join("run");
    let out = run_expecting(
        twlab()
            .current_dir(cwd.path())
            .arg("run")
            .arg("--out")
            .arg(&run_dir)
            .arg("--junit")
            .arg(run_dir.join("summary.json"))
            .arg(&scenario),
        2,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the run writes its own summary.json"),
        "{stderr}"
    );
    assert!(!run_dir.exists());
    if !common::require_root("run_junit_is_checked_before_the_run_starts") {
        return;
    }
    // A directory that cannot be written, even by root: a read-only tmpfs.
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount(&self.0);
        }
    }
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    nix::mount::mount(
        Some("tmpfs"),
        &ro,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .expect("mount a read-only tmpfs");
    let _unmount = Unmount(ro.clone());
    let cwd = tempfile::tempdir().expect("cwd");
    let out = run_expecting(
        twlab()
            .current_dir(cwd.path())
            .args(["run", "--junit"])
            .arg(ro.join("j.xml"))
            .arg(&scenario),
        2,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be written"), "{stderr}");
    // `run --out` there: refused as input too (it was exit 3).
    let out = run_expecting(
        twlab()
            .current_dir(cwd.path())
            .args(["run", "--out"])
            .arg(ro.join("run"))
            .arg(manifest_dir().join("scenarios/tw_reuse.yaml")),
        2,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot create it"), "{stderr}");
    assert_eq!(std::fs::read_dir(cwd.path()).expect("cwd").count(), 0);
}

/// Issue 23, item 11a: `run --out FILE/sub` names `FILE` as what is not a
/// directory (it said that `FILE/sub` "exists and is not a directory").
#[test]
fn run_out_under_a_file_names_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("FILE");
    std::fs::write(&file, "x").expect("file");
    for out in [file.join("sub"), file.join("sub/deeper")] {
        let cmd = run_expecting(
            twlab()
                .current_dir(tmp.path())
                .args(["run", "--out"])
                .arg(&out)
                .arg(manifest_dir().join("scenarios/tw_reuse.yaml")),
            2,
        );
        let stderr = String::from_utf8_lossy(&cmd.stderr);
        assert!(
            stderr.contains(&format!("{} is not a directory", file.display()))
                && !stderr.contains("exists"),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).expect("file"), "x");
}

/// `compare --out` is checked before anything is read or printed: an
/// input of the comparison (by its path or a link to it) and a directory
/// are refused with exit 2 and nothing on stdout.
#[test]
fn compare_out_never_overwrites_an_input_and_is_checked_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (from, to) in [("kernel-6.1", &a), ("kernel-6.18", &b)] {
        std::fs::create_dir(to).expect("mkdir");
        for f in ["summary.json", "env.json", "scenario.yaml"] {
            std::fs::copy(
                manifest_dir()
                    .join("tests/fixtures/compare")
                    .join(from)
                    .join(f),
                to.join(f),
            )
            .expect("copy");
        }
    }
    let link = tmp.path().join("link.md");
    std::os::unix::fs::symlink(b.join("env.json"), &link).expect("symlink");
    let before: Vec<Vec<u8>> = [
        "a/summary.json",
        "a/env.json",
        "b/scenario.yaml",
        "b/env.json",
    ]
    .iter()
    .map(|f| std::fs::read(tmp.path().join(f)).expect("read"))
    .collect();
    for (out, want) in [
        (a.join("summary.json"), "which this command reads"),
        (a.join("env.json"), "which this command reads"),
        (b.join("scenario.yaml"), "which this command reads"),
        // Through `..` and a symlink.
        (a.join("../b/scenario.yaml"), "which this command reads"),
        (link.clone(), "which this command reads"),
        (tmp.path().to_path_buf(), "is a directory"),
        (tmp.path().join("no/c.md"), "does not exist"),
    ] {
        let cmd = twlab()
            .arg("compare")
            .arg(&a)
            .arg(&b)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("twlab runs");
        let stderr = String::from_utf8_lossy(&cmd.stderr);
        assert_eq!(cmd.status.code(), Some(2), "{}: {stderr}", out.display());
        assert!(stderr.contains(want), "{}: {stderr}", out.display());
        assert!(
            cmd.stdout.is_empty(),
            "{}: printed before the check",
            out.display()
        );
    }
    let after: Vec<Vec<u8>> = [
        "a/summary.json",
        "a/env.json",
        "b/scenario.yaml",
        "b/env.json",
    ]
    .iter()
    .map(|f| std::fs::read(tmp.path().join(f)).expect("read"))
    .collect();
    assert!(before == after, "an input was changed");
    let md = tmp.path().join("c.md");
    run_expecting(
        twlab().arg("compare").arg(&a).arg(&b).arg("--out").arg(&md),
        0,
    );
    assert!(std::fs::read_to_string(&md).expect("c.md").contains('|'));
}

/// `twlab states` refuses what `run` refuses, before it counts: port 0, a
/// `--watch` under the sampler's 50 ms floor, `--count 0`, a `--netns`
/// that is no namespace; and it never writes clear-screen escapes to a pipe.
#[test]
fn states_refuses_what_run_refuses_and_writes_no_escapes_to_a_pipe() {
    for args in [
        vec!["states", "127.0.0.1:0"],
        vec!["states", "127.0.0.1:1", "--watch", "1ns", "--count", "3"],
        vec!["states", "127.0.0.1:1", "--watch", "49ms", "--count", "3"],
        vec!["states", "127.0.0.1:1", "--watch", "1s", "--count", "0"],
        vec!["states", "127.0.0.1:1", "--netns", ""],
        vec!["states", "127.0.0.1:1", "--netns", "."],
        vec!["states", "127.0.0.1:1", "--netns", ".."],
        vec!["states", "127.0.0.1:1", "--netns", "/run"],
        vec!["states", "127.0.0.1:1", "--netns", "/etc/hostname"],
    ] {
        let out = twlab().args(&args).output().expect("twlab runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: counted before refusing");
    }
    if !common::require_root("states_refuses_what_run_refuses_and_writes_no_escapes_to_a_pipe") {
        return;
    }
    let out = run_expecting(
        twlab().args([
            "states",
            "127.0.0.1:1",
            "--no-conntrack",
            "--watch",
            "50ms",
            "--count",
            "2",
        ]),
        0,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("sockets by state").count(), 2, "{stdout}");
    assert!(!stdout.contains('\x1b'), "escapes in a pipe: {stdout:?}");
    // A namespace file given as a path is one (nsfs) and is accepted.
    run_expecting(
        twlab().args([
            "states",
            "127.0.0.1:1",
            "--no-conntrack",
            "--netns",
            "/proc/self/ns/net",
        ]),
        0,
    );
}
