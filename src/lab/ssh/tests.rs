//! Unit tests of the parent module (ssh).

use super::*;
use crate::error::display_argv;

fn v(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_argument_is_quoted_on_its_own() {
    let line = remote_line(&v(&["printf", "%s", "a b 'c' $(id)"]), false);
    assert_eq!(line, r#"printf '%s' 'a b '\''c'\'' $(id)'"#);
    let out = std::process::Command::new("sh")
        .args(["-c", &line])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a b 'c' $(id)");
}

#[test]
fn sudo_comes_first_and_empty_arguments_survive() {
    assert_eq!(
        remote_line(&v(&["sysctl", "-n", "net.ipv4.tcp_tw_reuse"]), true),
        "sudo -n -- sysctl -n net.ipv4.tcp_tw_reuse"
    );
    assert_eq!(remote_line(&v(&["printf", ""]), false), "printf ''");
}

#[test]
fn the_mux_client_only_names_the_control_socket() {
    let cmd = mux_command(Path::new("/run/x/master"), "uname -r");
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(cmd.get_program(), "ssh");
    assert_eq!(
        args.join(" "),
        "-S /run/x/master -o BatchMode=yes -o ControlMaster=no -T -p 9 none -- uname -r"
    );
}

#[test]
fn the_wrapper_keeps_the_pid_while_the_program_runs() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("p.pid").display().to_string();
    let argv = script(
        WRAPPER,
        "twlab-remote",
        &[&pidfile, "sh", "-c", "cat \"$0\"; exit 3", &pidfile],
    );
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .unwrap();
    // The program saw its own PID in the file, and the file is gone after.
    let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(pid > 1);
    assert_eq!(out.status.code(), Some(3));
    assert!(!Path::new(&pidfile).exists());
    // A pidfile name that is taken is not written through.
    std::fs::write(&pidfile, "keep").unwrap();
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(125));
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), "keep");
}

#[test]
fn tidying_removes_only_the_pidfiles_of_programs_that_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone.pid");
    let alive = dir.path().join("alive.pid");
    std::fs::write(&gone, "999999999\n").unwrap();
    std::fs::write(&alive, format!("{}\n", std::process::id())).unwrap();
    let (g, a) = (gone.display().to_string(), alive.display().to_string());
    let argv = script(TIDY, "twlab-tidy", &[&g, &a, "/nonexistent/x.pid"]);
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!gone.exists());
    assert!(alive.exists());
}

#[test]
fn a_kill_without_a_pidfile_is_harmless() {
    let argv = kill_argv("/nonexistent/twlab-x.pid", Signal::SIGKILL);
    assert_eq!(argv[5], "KILL");
    let started = Instant::now();
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_content_hash_does_not_depend_on_read_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let data: Vec<u8> = (0..200_003u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&a, &data).unwrap();
    let (h1, n) = content_hash(&a).unwrap();
    assert_eq!(n, data.len() as u64);
    let mut other = data.clone();
    other[100_000] ^= 1;
    let b = dir.path().join("b");
    std::fs::write(&b, &other).unwrap();
    assert_ne!(content_hash(&b).unwrap().0, h1);
    assert_eq!(content_hash(&a).unwrap().0, h1);
    assert!(remote_copy_path(h1).starts_with("/tmp/twlab-"));
}

#[test]
fn shown_commands_read_like_ssh() {
    let argv = v(&["sysctl", "-n", "net.ipv4.tcp_tw_reuse"]);
    assert_eq!(
        display_argv(&shown_argv("admin@host", &argv, false)),
        "ssh admin@host -- sysctl -n net.ipv4.tcp_tw_reuse"
    );
    assert_eq!(
        display_argv(&shown_argv("admin@host", &argv, true)),
        "ssh admin@host -- sudo -n -- sysctl -n net.ipv4.tcp_tw_reuse"
    );
}
