//! Helpers shared by the tests that run twlab's binary or build real labs.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;
use twlab::scenario::HumanDuration;
use twlab::scenario::labfile::LabHosts;
pub use twlab::scenario::labfile::{HostSpec, LabSpec};

/// Is this CI's run (CI=true)? There every test runs for real.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A test that cannot run here, and `why`: in CI a failure (never a
/// silent skip); on a user's machine it says `SKIPPED test: why` and
/// passes. Always `false`, for the `require_*` checks to return.
pub fn cannot_run(test: &str, why: &str) -> bool {
    assert!(
        !in_ci(),
        "{test}: CI=true but {why}: tests must run for real in CI"
    );
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// Tests that build labs need root. On a user's machine without it they say
/// so and pass; in CI (CI=true, which runs as root) missing root is a failure,
/// never a silent skip.
pub fn require_root(test: &str) -> bool {
    nix::unistd::geteuid().is_root()
        || cannot_run(
            test,
            "not root (network namespaces need it); run the tests as root",
        )
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

/// The files of the fixture directory `rel` (under the repository),
/// sorted; none is a failure (a moved corpus must not pass as empty).
pub fn files_in(rel: &str) -> Vec<PathBuf> {
    let dir = manifest_dir().join(rel);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// The `# expect: ` text of a fixture's first line: what twlab must say of
/// it. The bytes after that line may be anything; a UTF-16 file's first
/// line is read as what it says once decoded.
pub fn expected_line(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let first = if first.contains('\u{0}') || first.starts_with('\u{FFFD}') {
        let units: Vec<u16> = bytes
            .get(2..)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    } else {
        first.into_owned()
    };
    first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{} lacks a first line `# expect: ...`", path.display()))
        .to_string()
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

/// Nothing of a run is left: none of `namespaces` exists and
/// `processes()` lists none, waited for up to 10 s (the lab is torn down
/// as twlab exits, and a signalled child takes a moment to go); then,
/// when given, the machine's own sysctls are still `sysctls`.
pub fn assert_nothing_left(
    namespaces: &[String],
    processes: impl Fn() -> Vec<String>,
    sysctls: Option<&[(String, String)]>,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ns: Vec<&String> = namespaces
            .iter()
            .filter(|n| std::path::Path::new("/run/netns").join(n).exists())
            .collect();
        let procs = processes();
        if ns.is_empty() && procs.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: namespaces {ns:?}, processes {procs:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if let Some(before) = sysctls {
        assert_eq!(
            machine_sysctls(),
            before,
            "the machine's own sysctls changed"
        );
    }
}

/// The twlab namespaces whose owner file names `pid`.
pub fn namespaces_owned_by(pid: u32) -> Vec<String> {
    twlab_namespaces()
        .into_iter()
        .filter(|ns| {
            let Some(id) = twlab::lab::netns::run_id_of(ns) else {
                return false;
            };
            std::fs::read_to_string(twlab::lab::run_id::owner_file(id))
                .ok()
                .and_then(|t| twlab::lab::run_id::parse_owner(&t))
                .is_some_and(|(owner, _)| owner == pid as i32)
        })
        .collect()
}

/// This machine in a lab file (no `ssh`), with its Docker engine when
/// `docker`.
pub fn this_machine(docker: bool) -> HostSpec {
    HostSpec {
        docker,
        ..HostSpec::default()
    }
}

/// This machine as a server the client reaches at 127.0.0.1.
pub fn loopback_server(docker: bool) -> HostSpec {
    HostSpec {
        address: Some(std::net::Ipv4Addr::LOCALHOST.into()),
        ..this_machine(docker)
    }
}

/// A lab file's model: `server`, one client host or a list of them, and
/// the cooldown between runs. Tests write lab files from it
/// ([`write_lab`]), so they cannot drift from what twlab reads.
pub fn lab_of(server: HostSpec, clients: Vec<HostSpec>, cooldown: Option<Duration>) -> LabSpec {
    let (client, clients) = match <[HostSpec; 1]>::try_from(clients) {
        Ok([one]) => (Some(one), Vec::new()),
        Err(many) => (None, many),
    };
    LabSpec {
        hosts: LabHosts {
            server,
            client,
            clients,
        },
        cooldown: cooldown.map(HumanDuration),
    }
}

/// Write `spec` to `path` as twlab writes a run's `lab.yaml`, and return
/// the path.
pub fn write_lab(path: &std::path::Path, spec: &LabSpec) -> PathBuf {
    let text = serde_yaml_ng::to_string(spec).expect("a lab file serializes");
    // Read back as twlab reads a lab file, checks included.
    let read = LabSpec::parse(&text, &path.display().to_string())
        .unwrap_or_else(|e| panic!("the lab file written does not read back: {e}\n{text}"));
    assert_eq!(
        &read, spec,
        "the lab file reads back as another lab:\n{text}"
    );
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path.to_path_buf()
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
        return cannot_run(test, &format!("no Docker engine ({why})"));
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
