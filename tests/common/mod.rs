//! Helpers shared by the tests that run twlab's binary or build real labs.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Tests that build labs need root. On a user's machine without it they say
/// so and pass; in CI (CI=true, which runs as root) missing root is a failure,
/// never a silent skip.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: CI=true but not root: lab tests must run for real in CI");
    }
    eprintln!("SKIPPED {test}: needs root (network namespaces); run the tests as root");
    false
}

pub fn twlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twlab"))
}

/// Run `cmd` to the end and check that it exits with `code`; when it does
/// not, the failure shows what it printed.
pub fn run_expecting(cmd: &mut Command, code: i32) -> Output {
    let out = cmd.output().expect("twlab runs");
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Network namespaces carrying twlab's label.
pub fn twlab_namespaces() -> Vec<String> {
    // /run/netns is where namespaces are named (by twlab and by `ip netns`).
    let mut names: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("twlab-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Processes running twlab's own binary as `serve` or `load`, or a wrk
/// aimed at a lab address (198.18.0.0/15).
pub fn lab_processes() -> Vec<String> {
    let exe = env!("CARGO_BIN_EXE_twlab");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let ours = args.first().is_some_and(|a| a == exe)
            && args.get(1).is_some_and(|a| a == "serve" || a == "load");
        let wrk = args
            .first()
            .is_some_and(|a| a == "wrk" || a.ends_with("/wrk"));
        // A zombie has an empty cmdline; reaped children do not appear at all.
        if ours || wrk {
            found.push(format!("{pid}: {}", args.join(" ")));
        }
    }
    found
}

/// The machine's own values of the sysctls the tests' scenarios touch.
pub fn machine_sysctls() -> Vec<(String, String)> {
    [
        "net/ipv4/tcp_tw_reuse",
        "net/ipv4/ip_local_port_range",
        "net/ipv4/tcp_fin_timeout",
        "net/netfilter/nf_conntrack_tcp_timeout_time_wait",
    ]
    .iter()
    .map(|k| {
        let v = std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap_or_default();
        (k.to_string(), v)
    })
    .collect()
}

pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Tomcat image the real-lab tests run (docker/tomcat/build.sh).
pub const TOMCAT_IMAGE: &str = "twlab/tomcat:10.1";

/// Tests that need root, this machine's Docker engine and the Tomcat image.
/// The image is built when missing (no registry is needed). Without Docker
/// on a user's machine they say so and pass; in CI (CI=true) that fails.
pub fn require_docker(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    let engine = Command::new("docker").arg("info").output();
    if !engine.as_ref().is_ok_and(|o| o.status.success()) {
        let why = match engine {
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: CI=true but no Docker engine: {why}");
        }
        eprintln!("SKIPPED {test}: needs a Docker engine ({why})");
        return false;
    }
    let present = Command::new("docker")
        .args(["image", "inspect", TOMCAT_IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        let built = Command::new("bash")
            .arg(manifest_dir().join("docker/tomcat/build.sh"))
            .arg(TOMCAT_IMAGE)
            .output()
            .expect("docker/tomcat/build.sh runs");
        assert!(
            built.status.success(),
            "{test}: building {TOMCAT_IMAGE} failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
    }
    true
}

/// The wrk image of `client.via: docker` (docker/wrk/build.sh).
pub const WRK_IMAGE: &str = "twlab/wrk:4.1";

/// What [`require_docker`] needs, and the wrk image too, built with
/// docker/wrk/build.sh when missing (no registry is needed). Without Docker
/// on a user's machine the test says so and passes; in CI (CI=true) that fails.
pub fn require_docker_wrk(test: &str) -> bool {
    if !require_docker(test) {
        return false;
    }
    let present = Command::new("docker")
        .args(["image", "inspect", WRK_IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        eprintln!("{WRK_IMAGE} is missing: building it with docker/wrk/build.sh");
        let built = Command::new("bash")
            .arg(manifest_dir().join("docker/wrk/build.sh"))
            .arg(WRK_IMAGE)
            .output()
            .expect("docker/wrk/build.sh runs");
        assert!(
            built.status.success(),
            "{test}: building {WRK_IMAGE} failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
    }
    true
}

/// Containers on this machine's engine labelled by twlab.
pub fn twlab_containers() -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=twlab.run",
            "--format",
            "{{.Names}}",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// This machine's own `net.ipv4.tcp_tw_reuse`.
pub fn tw_reuse() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_tw_reuse")
        .expect("tcp_tw_reuse")
        .trim()
        .to_string()
}

/// A value of tcp_tw_reuse other than `current`, so a change shows.
pub fn other_than(current: &str) -> &'static str {
    if current == "0" { "1" } else { "0" }
}

/// Puts this machine's `net.ipv4.tcp_tw_reuse` back to the value it had
/// when the guard was made, when dropped: a test that makes twlab change it
/// and then fails must not leave the machine changed.
pub struct TwReuseGuard(String);

impl TwReuseGuard {
    pub fn new() -> TwReuseGuard {
        TwReuseGuard(tw_reuse())
    }
}

impl Drop for TwReuseGuard {
    fn drop(&mut self) {
        if tw_reuse() != self.0 {
            let _ = std::fs::write("/proc/sys/net/ipv4/tcp_tw_reuse", &self.0);
        }
    }
}
