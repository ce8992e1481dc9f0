//! `twlab doctor` on this machine and `twlab doctor --lab FILE` against
//! real hosts: this machine (with its Docker engine) and a real sshd in a
//! namespace (`common/sshd.rs`), once with an unknown host key and once
//! with the right one.
//!
//! Needs root (namespaces, sshd) and for the Docker parts this machine's
//! engine. Without them the tests say so and pass, unless `CI=true`, where
//! they fail: CI runs everything for real.

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use common::{lab_of, loopback_server, run_expecting, this_machine, twlab, write_lab};
use sshd::SshdHost;
use std::path::Path;
use twlab::scenario::labfile::HostSpec;

/// The line of check `name` (its second word), if any.
fn line<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
}

/// The line of check `name`, which must be there and start with `mark`.
fn expect<'a>(text: &'a str, name: &str, mark: &str) -> &'a str {
    let l = line(text, name).unwrap_or_else(|| panic!("no `{name}` line:\n{text}"));
    assert!(
        l.split_whitespace().next() == Some(mark),
        "`{name}` is not `{mark}`:\n{text}"
    );
    l
}

fn doctor(lab: Option<&Path>, code: i32) -> String {
    let mut cmd = twlab();
    cmd.arg("doctor");
    if let Some(lab) = lab {
        cmd.arg("--lab").arg(lab);
    }
    let out = run_expecting(&mut cmd, code);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    text
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .expect("uname")
        .release()
        .to_string_lossy()
        .into_owned()
}

/// `ssh` processes of this machine talking to `addr` (a control master
/// that outlived doctor would be one).
fn ssh_processes_to(addr: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let ssh = args
            .first()
            .is_some_and(|a| a == "ssh" || a.ends_with("/ssh"));
        if ssh && args.iter().any(|a| a.contains(addr)) {
            found.push(args.join(" "));
        }
    }
    found
}

#[test]
fn doctor_lists_docker_ssh_debootstrap_and_the_tomcat_image() {
    if !common::require_docker("doctor_lists_docker_ssh_debootstrap_and_the_tomcat_image") {
        return;
    }
    let out = run_expecting(twlab().arg("doctor"), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["ssh", "debootstrap"] {
        assert!(line(&text, name).is_some(), "no `{name}` line:\n{text}");
    }
    // Docker runs here (require_docker), and the image is there.
    let docker = expect(&text, "docker", "ok");
    assert!(docker.contains("Docker "), "{docker}");
    let image = expect(&text, "tomcat-image", "ok");
    assert!(image.contains("twlab/tomcat:10.1 present"), "{image}");
}

#[test]
fn doctor_without_an_engine_shows_docker_as_optional_and_passes_it() {
    if !common::require_root("doctor_without_an_engine_shows_docker_as_optional_and_passes_it") {
        return;
    }
    let out = twlab()
        .arg("doctor")
        .env("DOCKER_HOST", "unix:///nonexistent/twlab-doctor.sock")
        .output()
        .expect("twlab doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    let docker = expect(&text, "docker", "--");
    assert!(docker.contains("optional"), "{docker}");
    expect(&text, "tomcat-image", "--");
    assert!(text.contains("fix: apt-get install docker.io"), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("FAIL docker") || l.starts_with("FAIL tomcat-image")),
        "{text}"
    );
}

#[test]
fn doctor_refuses_a_bad_lab_file_with_its_line_before_any_check() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = tmp.path().join("lab.yaml");
    std::fs::write(
        &lab,
        "hosts:\n  server:\n    adress: 1.2.3.4\n  client: {}\n",
    )
    .unwrap();
    let out = run_expecting(twlab().arg("doctor").arg("--lab").arg(&lab), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:5:", lab.display())),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "checks ran before the lab file was read"
    );
}

#[test]
fn doctor_checks_a_lab_of_this_machine_with_its_docker_engine() {
    if !common::require_docker("doctor_checks_a_lab_of_this_machine_with_its_docker_engine") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = write_lab(
        &tmp.path().join("local.yaml"),
        &lab_of(loopback_server(true), vec![this_machine(false)], None),
    );
    let text = doctor(Some(&lab), 0);
    assert!(!text.contains("FAIL"), "{text}");
    let kernel = kernel_release();
    for side in ["server", "client"] {
        expect(&text, &format!("{side}.connect"), "ok");
        let k = expect(&text, &format!("{side}.kernel"), "ok");
        assert!(k.ends_with(&kernel), "{k}");
        let s = expect(&text, &format!("{side}.sysctl"), "ok");
        assert!(s.contains("net.ipv4.tcp_tw_reuse = "), "{s}");
        expect(&text, &format!("{side}.sockets"), "ok");
        expect(&text, &format!("{side}.conntrack"), "ok");
    }
    let d = expect(&text, "server.docker", "ok");
    assert!(d.contains("Docker "), "{d}");
    assert!(line(&text, "client.docker").is_none(), "{text}");
    assert!(line(&text, "client.wrk").is_some(), "{text}");
}

/// A lab of this machine (server) and the fixture's sshd (client), with
/// host keys checked against `known_hosts`.
fn ssh_lab(fx: &SshdHost, known_hosts: &Path, dir: &Path) -> std::path::PathBuf {
    let server = HostSpec {
        address: Some(fx.root_addr.into()),
        ..HostSpec::default()
    };
    let client = HostSpec {
        known_hosts: Some(known_hosts.to_path_buf()),
        address: None,
        ..fx.spec()
    };
    write_lab(&dir.join("lab.yaml"), &lab_of(server, vec![client], None))
}

#[test]
fn doctor_fails_on_an_unknown_host_key_and_says_how_to_add_it() {
    if !common::require_root("doctor_fails_on_an_unknown_host_key_and_says_how_to_add_it") {
        return;
    }
    let fx = SshdHost::start("doctor-key");
    let tmp = tempfile::tempdir().expect("tempdir");
    let known_hosts = tmp.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let lab = ssh_lab(&fx, &known_hosts, tmp.path());
    let text = doctor(Some(&lab), 3);
    let connect = expect(&text, "client.connect", "FAIL");
    assert!(connect.contains(&fx.destination()), "{connect}");
    assert!(text.contains("Host key verification failed"), "{text}");
    let fix = format!(
        "fix: add the host key to known_hosts, e.g. ssh-keyscan {} >> {} after checking its fingerprint",
        fx.addr,
        known_hosts.display()
    );
    assert!(text.contains(&fix), "no `{fix}`:\n{text}");
    // Nothing else is tried on a host that did not connect; the local
    // server is still checked.
    assert!(line(&text, "client.kernel").is_none(), "{text}");
    expect(&text, "server.kernel", "ok");
    // The key was not accepted behind the user's back.
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), "");
    assert_eq!(ssh_processes_to(&fx.addr.to_string()), Vec::<String>::new());
}

#[test]
fn doctor_checks_an_ssh_host_with_a_known_key() {
    if !common::require_root("doctor_checks_an_ssh_host_with_a_known_key") {
        return;
    }
    let fx = SshdHost::start("doctor-ok");
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = ssh_lab(&fx, &fx.known_hosts, tmp.path());
    let text = doctor(Some(&lab), 0);
    assert!(!text.contains("FAIL"), "{text}");
    let connect = expect(&text, "client.connect", "ok");
    assert!(connect.contains(&fx.destination()), "{connect}");
    // The fixture's host shares this machine's kernel.
    let k = expect(&text, "client.kernel", "ok");
    assert!(k.ends_with(&kernel_release()), "{k}");
    expect(&text, "client.sysctl", "ok");
    let s = expect(&text, "client.sockets", "ok");
    assert!(s.contains(" ss ") || s.contains(" netstat "), "{s}");
    expect(&text, "client.conntrack", "ok");
    let w = line(&text, "client.wrk").unwrap_or_else(|| panic!("no client.wrk:\n{text}"));
    assert!(w.contains("client.tool: wrk"), "{w}");
    // The control master went with doctor.
    assert_eq!(ssh_processes_to(&fx.addr.to_string()), Vec::<String>::new());
}
