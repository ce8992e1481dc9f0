//! Unit tests of the parent module (doctor).

use super::*;
use crate::scenario::labfile::SshDestination;

fn ssh_host(dest: &str) -> HostSpec {
    HostSpec {
        ssh: Some(SshDestination(dest.into())),
        ..HostSpec::default()
    }
}

#[test]
fn doctor_renders_marks_fixes_and_continuation_lines() {
    let text = render(&[
        Check::pass("kernel", "6.1.0"),
        Check::absent("wrk", "missing", "apt-get install wrk"),
        Check::fail("client.connect", "cannot connect:\n  Host key", "add it"),
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ok   kernel         6.1.0");
    assert_eq!(lines[1], "--   wrk            missing");
    assert_eq!(lines[2], "                    fix: apt-get install wrk");
    assert_eq!(lines[3], "FAIL client.connect cannot connect:");
    assert_eq!(lines[4], "                      Host key");
    assert_eq!(lines[5], "                    fix: add it");
    // The name is always the second word, what the tests look for.
    assert_eq!(lines[3].split_whitespace().nth(1), Some("client.connect"));
}

#[test]
fn doctor_fixes_an_unknown_host_key_with_ssh_keyscan_into_the_right_file() {
    let msg = "ssh root@10.0.0.2 (client): cannot connect: failed:\n  Host key verification failed.\n  hint: the host key is not in known_hosts";
    let (detail, fix) = connect_failure(&ssh_host("root@10.0.0.2"), Side::Client, msg);
    assert!(detail.contains("Host key verification failed"), "{detail}");
    assert!(!detail.contains("hint:"), "{detail}");
    assert_eq!(
        fix,
        "add the host key to known_hosts, e.g. ssh-keyscan 10.0.0.2 >> ~/.ssh/known_hosts after checking its fingerprint (twlab never accepts a host key itself)"
    );
    let mut h = ssh_host("admin@[fd00::2]");
    h.known_hosts = Some("/etc/twlab/known_hosts".into());
    h.port = Some(crate::scenario::Port(2222));
    let (_, fix) = connect_failure(&h, Side::Server, msg);
    assert!(
        fix.contains("ssh-keyscan -p 2222 fd00::2 >> /etc/twlab/known_hosts"),
        "{fix}"
    );
}

#[test]
fn doctor_names_the_fix_for_a_changed_key_and_a_refused_login() {
    let changed = "cannot connect:\n  @ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\n  Host key verification failed.";
    let (_, fix) = connect_failure(&ssh_host("h1"), Side::Server, changed);
    assert!(fix.contains("ssh-keygen -R h1"), "{fix}");
    let denied = "cannot connect:\n  root@h1: Permission denied (publickey).";
    let (_, fix) = connect_failure(&ssh_host("root@h1"), Side::Client, denied);
    assert!(fix.contains("hosts.client.identity"), "{fix}");
}

#[test]
fn doctor_shortens_image_ids() {
    assert_eq!(
        short_id("sha256:367db9e35939aaaaaaaaaaaa"),
        "sha256:367db9e35939"
    );
    assert_eq!(short_id("abc"), "abc");
}

/// Every load tool has a line, found or not, and a missing one never makes
/// doctor fail; a found one shows its version (or says it is unknown).
#[tokio::test]
async fn every_load_tool_is_listed_found_or_not_with_its_version() {
    let checks = tool_checks().await;
    for tool in crate::load::client::TOOLS {
        let name = tool.program().unwrap_or(tool.name());
        let c = checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no line for {name}"));
        assert!(c.ok, "{name}: an optional tool never fails doctor");
        match (tool.program(), &c.fix) {
            (Some(_), Some(fix)) => {
                assert!(c.detail.starts_with("missing"), "{}", c.detail);
                assert_eq!(fix, tool.install());
            }
            (Some(_), None) => assert!(
                c.detail.contains(" (")
                    && c.detail.contains(&format!("client.tool: {}", tool.name())),
                "{}",
                c.detail
            ),
            (None, fix) => assert!(fix.is_none(), "{name} needs nothing installed"),
        }
    }
    assert_eq!(checks.len(), crate::load::client::TOOLS.len());
}
