//! Unit tests of the parent module (ssh).

use super::*;
use crate::error::display_argv;
use std::os::unix::fs::PermissionsExt;

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

/// Run `argv` in a process group of its own (so a `kill 0` it makes hits
/// only itself) and return how it ended.
fn run_alone(argv: &[String]) -> std::process::ExitStatus {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .process_group(0)
        .status()
        .unwrap()
}

#[test]
fn pidfiles_that_name_a_group_or_no_pid_are_never_signalled() {
    // `kill -s KILL 0` would kill the script's own process group (the
    // script itself: it would end by SIGKILL); `-1` would be every process
    // root can signal, so it is left to the same check and never run here.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("twlab-x.pid");
    let f = pidfile.display().to_string();
    for content in ["0", "00", "0\n", "abc", "1 2", "-0", "+5", ""] {
        std::fs::write(&pidfile, content).unwrap();
        for argv in [clean_kill_argv(&f), kill_argv(&f, Signal::SIGKILL)] {
            let status = run_alone(&argv);
            assert!(
                status.success(),
                "{content:?} in a pidfile: {status} ({})",
                argv[2]
            );
        }
    }
}

#[test]
fn clean_kill_ends_the_program_of_its_pidfile_and_removes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("twlab-x.pid");
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::fs::write(&pidfile, format!("{}\n", sleeper.id())).unwrap();
    assert!(run_alone(&clean_kill_argv(&pidfile.display().to_string())).success());
    let status = sleeper.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!pidfile.exists());
}

#[test]
fn a_pidfile_that_is_a_symlink_or_of_another_user_is_not_acted_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let real = dir.path().join("real.pid");
    std::fs::write(&real, format!("{}\n", sleeper.id())).unwrap();
    let link = dir.path().join("twlab-link.pid");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let l = link.display().to_string();
    assert!(run_alone(&clean_kill_argv(&l)).success());
    assert!(run_alone(&kill_argv(&l, Signal::SIGKILL)).success());
    let mut others = Vec::new();
    if nix::unistd::geteuid().is_root() {
        // A file another user wrote (as in a shared /tmp) names no program of ours.
        let foreign = dir.path().join("twlab-foreign.pid");
        std::fs::write(&foreign, format!("{}\n", sleeper.id())).unwrap();
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
        let f = foreign.display().to_string();
        assert!(run_alone(&clean_kill_argv(&f)).success());
        assert!(run_alone(&kill_argv(&f, Signal::SIGKILL)).success());
        others.push(foreign);
    }
    assert_eq!(sleeper.try_wait().unwrap(), None, "the program was killed");
    assert!(link.exists() && others.iter().all(|p| p.exists()));
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn the_wrapper_keeps_pidfiles_only_in_a_directory_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let r = ran.display().to_string();
    let wrapped = |pidfile: &Path| {
        let p = pidfile.display().to_string();
        let argv = script(WRAPPER, "twlab-remote", &[&p, "touch", &r]);
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .unwrap()
    };
    // A missing directory is made, 0700.
    let fresh = dir.path().join("fresh");
    let out = wrapped(&fresh.join("twlab-a.pid"));
    assert!(out.status.success(), "{out:?}");
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    std::fs::remove_file(&ran).unwrap();
    // A symlink planted where the directory goes is refused.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let planted = dir.path().join("planted");
    std::os::unix::fs::symlink(&elsewhere, &planted).unwrap();
    let out = wrapped(&planted.join("twlab-b.pid"));
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory of this user"));
    assert!(!ran.exists(), "the program ran");
    if nix::unistd::geteuid().is_root() {
        // A directory of another user (made first in a shared /tmp) too.
        let foreign = dir.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
        let out = wrapped(&foreign.join("twlab-c.pid"));
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        assert!(!ran.exists(), "the program ran");
    }
}

#[test]
fn pidfiles_of_root_live_where_only_root_writes() {
    assert_eq!(pidfile_dir(0), "/run/twlab/pids");
    assert_eq!(pidfile_dir(1000), "/tmp/twlab-1000");
    assert!(new_pidfile(&pidfile_dir(0)).starts_with("/run/twlab/pids/twlab-"));
}
