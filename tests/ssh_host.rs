//! `twlab::lab::ssh::SshHost` against a real sshd (see `common/sshd.rs`):
//! a namespace on this machine, reached over a veth pair, so every test
//! goes through a real SSH connection, key check, multiplexing and quoting.
//!
//! Needs root (namespaces, sshd). Without root the tests say so and pass,
//! unless `CI=true`, where they fail: CI runs as root and must not skip.

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use common::require_root;

use nix::sys::signal::Signal;
use sshd::SshdHost;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use twlab::common::endpoint::{Endpoint, Side};
use twlab::error::Error;
use twlab::lab::Host;
use twlab::lab::ssh::SshHost;
use twlab::process::GRACE;
use twlab::scenario::SysctlName;

fn v(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Connect to the fixture, control socket in a fresh directory.
async fn connect(fx: &SshdHost, side: Side) -> (SshHost, tempfile::TempDir) {
    let ctl = tempfile::tempdir().expect("control dir");
    let host = SshHost::connect(&fx.spec(), side, ctl.path())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\nsshd log:\n{}", fx.sshd_log()));
    (host, ctl)
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn alive(pid: i32) -> bool {
    // A zombie is gone for our purposes: it runs nothing.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .unwrap_or_default()
}

/// The PID a remote program's pidfile holds, once written.
fn remote_pid(pidfile: &str) -> i32 {
    let mut pid = 0;
    wait_until(
        "the pidfile names the program",
        Duration::from_secs(5),
        || {
            pid = std::fs::read_to_string(pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            pid > 0
        },
    );
    pid
}

#[test]
fn ssh_commands_run_on_the_host_and_arguments_arrive_verbatim() {
    if !require_root("ssh_commands_run_on_the_host_and_arguments_arrive_verbatim") {
        return;
    }
    let fx = SshdHost::start("run");
    rt().block_on(async {
        let (host, _ctl) = connect(&fx, Side::Server).await;
        assert_eq!(host.describe(), format!("ssh {}", fx.destination()));
        assert_eq!(
            host.sysctl_scope(),
            "this host's own network namespace (machine-wide for its programs); restored by twlab"
        );
        let local_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(host.run(&v(&["uname", "-r"])).await.unwrap(), local_kernel);

        // Spaces, quotes and a command substitution are data, not shell.
        let tricky = "a b 'c' \"d\" $(id) `id` ; exit 9 \\ * ~";
        let out = host.run(&v(&["printf", "%s", tricky])).await.unwrap();
        assert_eq!(out, tricky);
        assert_eq!(host.run(&v(&["printf", "[%s]", ""])).await.unwrap(), "[]");

        // It really runs there: the namespace's own address.
        let addrs = host
            .run(&v(&["ip", "-o", "-4", "addr", "show"]))
            .await
            .unwrap();
        assert!(addrs.contains(&format!("inet {}/30", fx.addr)), "{addrs}");

        let (_, shown) = host.command(&v(&["sysctl", "-n", "net.ipv4.tcp_tw_reuse"]));
        assert_eq!(
            shown.join(" "),
            format!(
                "ssh {} -- sysctl -n net.ipv4.tcp_tw_reuse",
                fx.destination()
            )
        );

        // A failure carries the command line, the status and the stderr.
        let err = host
            .run(&v(&["sh", "-c", "echo boom >&2; exit 7"]))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Command(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("exited with status 7"), "{text}");
        assert!(text.contains("boom"), "{text}");
        assert!(
            text.contains(&format!("`ssh {} -- sh -c", fx.destination())),
            "{text}"
        );
        assert_eq!(host.socket_tool(), "ss");

        // One master per host, gone after close and after a drop alike.
        let ctl = host.control_socket().to_path_buf();
        assert!(master_running(&ctl));
        host.close().await;
        assert!(!master_running(&ctl), "the master outlived close()");
        let (dropped, _ctl2) = connect(&fx, Side::Client).await;
        let ctl = dropped.control_socket().to_path_buf();
        assert!(master_running(&ctl));
        drop(dropped);
        assert!(!master_running(&ctl), "the master outlived a drop");
    });
}

/// Does the master of this control socket answer?
fn master_running(ctl: &Path) -> bool {
    std::process::Command::new("ssh")
        .arg("-S")
        .arg(ctl)
        .args(["-O", "check", "none"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn ssh_refuses_an_unknown_or_changed_host_key_and_adds_nothing() {
    if !require_root("ssh_refuses_an_unknown_or_changed_host_key_and_adds_nothing") {
        return;
    }
    let fx = SshdHost::start("hostkey");
    let empty = fx.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let mut spec = fx.spec();
    spec.known_hosts = Some(empty.clone());
    let ctl = tempfile::tempdir().unwrap();
    let result = rt().block_on(SshHost::connect(&spec, Side::Client, ctl.path()));
    let err = match result {
        Ok(_) => panic!("a host with an unknown key was accepted"),
        Err(e) => e,
    };
    assert_eq!(err.exit_code(), 3);
    let text = err.to_string();
    assert!(text.contains("Host key verification failed"), "{text}");
    assert!(text.contains(&fx.destination()), "{text}");
    assert_eq!(
        std::fs::read_to_string(&empty).unwrap(),
        "",
        "known_hosts was changed"
    );

    // A changed key (another host's key for this address) is refused too.
    let other = fx.dir().join("other");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let wrong = fx.dir().join("wrong_known_hosts");
    let line = format!(
        "{} {}",
        fx.addr,
        std::fs::read_to_string(other.with_extension("pub")).unwrap()
    );
    std::fs::write(&wrong, &line).unwrap();
    spec.known_hosts = Some(wrong.clone());
    let text = match rt().block_on(SshHost::connect(&spec, Side::Client, ctl.path())) {
        Ok(_) => panic!("a host with a changed key was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(text.contains("Host key verification failed"), "{text}");
    assert_eq!(std::fs::read_to_string(&wrong).unwrap(), line);
}

#[test]
fn ssh_sysctls_are_read_and_written_on_the_host() {
    if !require_root("ssh_sysctls_are_read_and_written_on_the_host") {
        return;
    }
    let fx = SshdHost::start("sysctl");
    let machine = || {
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_tw_reuse")
            .unwrap()
            .trim()
            .to_string()
    };
    rt().block_on(async {
        let (host, _ctl) = connect(&fx, Side::Server).await;
        let name = SysctlName::parse("net.ipv4.tcp_tw_reuse").unwrap();
        let in_ns = || {
            fx.exec(&["sysctl", "-n", "net.ipv4.tcp_tw_reuse"])
                .trim()
                .to_string()
        };
        let original = host.read_sysctl(&name).await.unwrap();
        assert_eq!(original, in_ns());
        // A value that is neither the host's nor this machine's, so a write
        // that landed in the wrong namespace would show.
        let machine_before = machine();
        let new = ["0", "1", "2"]
            .into_iter()
            .find(|v| *v != original && *v != machine_before)
            .unwrap();
        host.write_sysctl(&name, new).await.unwrap();
        assert_eq!(in_ns(), new);
        assert_eq!(host.read_sysctl(&name).await.unwrap(), new);
        assert_eq!(
            machine(),
            machine_before,
            "this machine's own net.ipv4.tcp_tw_reuse changed"
        );
        host.write_sysctl(&name, &original).await.unwrap();
        assert_eq!(in_ns(), original);
        host.close().await;
    });
}

#[test]
fn ssh_remote_program_is_stopped_by_its_remote_pid() {
    if !require_root("ssh_remote_program_is_stopped_by_its_remote_pid") {
        return;
    }
    let fx = SshdHost::start("spawn");
    rt().block_on(async {
        let (host, _ctl) = connect(&fx, Side::Client).await;
        let log = fx.dir().join("sleep.log");

        let mut child = host.spawn(&v(&["sleep", "30"]), &log, false).unwrap();
        assert_eq!(
            child.command(),
            format!("ssh {} -- sleep 30", fx.destination())
        );
        let pidfile = host.last_pidfile().expect("a pidfile");
        assert!(
            pidfile.starts_with("/run/twlab/pids/twlab-") && pidfile.ends_with(".pid"),
            "{pidfile}"
        );
        assert_eq!(host.pidfiles(), vec![pidfile.clone()]);
        let pid = remote_pid(&pidfile);
        assert_eq!(cmdline(pid), "sleep 30 ");
        assert!(
            sshd::netns_pids(&fx.netns).contains(&pid),
            "not in the host's namespace"
        );

        let started = Instant::now();
        let (status, _) = child.stop(Signal::SIGTERM, GRACE).await.unwrap();
        // SIGTERM reached `sleep` itself: no escalation to SIGKILL needed.
        assert!(started.elapsed() < GRACE, "took {:?}", started.elapsed());
        assert!(!status.success());
        wait_until("the remote sleep is gone", Duration::from_secs(5), || {
            !alive(pid)
        });
        wait_until("the pidfile is removed", Duration::from_secs(5), || {
            !Path::new(&pidfile).exists()
        });

        // Dropping a child that was not stopped kills the remote program too.
        let child = host.spawn(&v(&["sleep", "31"]), &log, false).unwrap();
        let pidfile = host.last_pidfile().unwrap();
        let pid = remote_pid(&pidfile);
        assert_eq!(cmdline(pid), "sleep 31 ");
        drop(child);
        wait_until(
            "the dropped remote sleep is gone",
            Duration::from_secs(5),
            || !alive(pid),
        );

        // stdout is captured, stderr goes to the log.
        let mut child = host
            .spawn(
                &v(&[
                    "sh",
                    "-c",
                    "printf 'out: %s' \"$1\"; echo 'err line' >&2",
                    "x",
                    "a b",
                ]),
                &log,
                true,
            )
            .unwrap();
        let (status, out) = child.wait().await.unwrap();
        assert!(status.success());
        assert_eq!(String::from_utf8_lossy(&out), "out: a b");
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("err line"), "{logged}");
        let pidfile = host.last_pidfile().unwrap();
        wait_until("the pidfile is removed", Duration::from_secs(5), || {
            !Path::new(&pidfile).exists()
        });
        host.close().await;
    });
    assert!(
        sshd::netns_pids(&fx.netns)
            .iter()
            .all(|p| cmdline(*p).starts_with("/usr/sbin/sshd") || cmdline(*p).starts_with("sshd")),
        "left in the namespace: {:?}",
        sshd::netns_pids(&fx.netns)
            .iter()
            .map(|p| cmdline(*p))
            .collect::<Vec<_>>()
    );
}

/// The copy of this twlab on the host lives in the shared /tmp: the tests
/// that make it take turns, and remove it after.
static TWLAB_COPY: Mutex<()> = Mutex::new(());

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn expected_copy() -> PathBuf {
    let (hash, _) = twlab::lab::ssh::content_hash(Path::new(env!("CARGO_BIN_EXE_twlab"))).unwrap();
    PathBuf::from(twlab::lab::ssh::remote_copy_path(hash))
}

/// Open `n` connections to the server, one request each; the server closes
/// them (Connection: close), so their TIME_WAIT is on its side.
fn closed_requests(addr: SocketAddr, n: usize) {
    for _ in 0..n {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)
            .expect("response until the server closes");
        let resp = String::from_utf8_lossy(&resp);
        assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    }
}

async fn start_serve(host: &SshHost, exe: &Path, fx: &SshdHost) -> twlab::process::Supervised {
    let argv = v(&[&exe.display().to_string(), "serve", "--listen", "[::]:8080"]);
    let mut server = host
        .spawn(&argv, &fx.dir().join("serve.log"), false)
        .unwrap();
    let target = SocketAddr::from((fx.addr, 8080));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
        if let Some(status) = server.try_status() {
            panic!("twlab serve ended ({status}): {}", server.stderr_tail(20));
        }
        assert!(Instant::now() < deadline, "twlab serve does not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

#[test]
fn twlab_is_copied_once_and_serves_over_ssh() {
    if !require_root("twlab_is_copied_once_and_serves_over_ssh") {
        return;
    }
    let _turn = TWLAB_COPY.lock().unwrap_or_else(|e| e.into_inner());
    let fx = SshdHost::start("copy");
    let local = PathBuf::from(env!("CARGO_BIN_EXE_twlab"));
    let expected = expected_copy();
    let _ = std::fs::remove_file(&expected);
    let _remove = RemoveOnDrop(expected.clone());
    rt().block_on(async {
        let (host, _ctl) = connect(&fx, Side::Server).await;
        let exe = host.twlab_exe(&local).await.unwrap();
        assert_eq!(exe, expected);
        let meta = std::fs::metadata(&exe).unwrap();
        assert!(meta.is_file() && meta.permissions().mode() & 0o111 == 0o111);
        assert_eq!(meta.len(), std::fs::metadata(&local).unwrap().len());
        assert_eq!(std::fs::read(&exe).unwrap(), std::fs::read(&local).unwrap());
        // Once per host, and a new connection reuses the copy that is there.
        assert_eq!(host.twlab_exe(&local).await.unwrap(), exe);
        let (again, _ctl2) = connect(&fx, Side::Server).await;
        assert_eq!(again.twlab_exe(&local).await.unwrap(), exe);
        let meta2 = std::fs::metadata(&exe).unwrap();
        assert_eq!(
            (meta.ino(), meta.mtime_nsec()),
            (meta2.ino(), meta2.mtime_nsec()),
            "copied again"
        );
        again.close().await;
        // No temporary file of the copy is left.
        let leftovers: Vec<_> = std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("twlab-copy."))
            .map(|e| e.path())
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // It runs there: the builtin server answers from the namespace.
        let mut server = start_serve(&host, &exe, &fx).await;
        closed_requests(SocketAddr::from((fx.addr, 8080)), 3);
        let (_, _) = server.stop(Signal::SIGTERM, GRACE).await.unwrap();

        // A twlab named by the lab file is checked, not copied.
        let mut spec = fx.spec();
        spec.twlab = Some("/nonexistent/twlab".into());
        let ctl = tempfile::tempdir().unwrap();
        let named = SshHost::connect(&spec, Side::Server, ctl.path())
            .await
            .unwrap();
        let err = named.twlab_exe(&local).await.unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/twlab") && err.contains("not an executable"),
            "{err}"
        );
        named.close().await;
        spec.twlab = Some(exe.display().to_string());
        let named = SshHost::connect(&spec, Side::Server, ctl.path())
            .await
            .unwrap();
        assert_eq!(named.twlab_exe(Path::new("/unused")).await.unwrap(), exe);
        named.close().await;
        host.close().await;
    });
}

/// NEEDS the real `twlab::measure::sockets_text` (being written in parallel): with
/// the stub `parse_ss`, which counts nothing, this test fails.
#[test]
fn socket_counts_over_ssh_see_listen_and_time_wait() {
    if !require_root("socket_counts_over_ssh_see_listen_and_time_wait") {
        return;
    }
    let _turn = TWLAB_COPY.lock().unwrap_or_else(|e| e.into_inner());
    let fx = SshdHost::start("counts");
    let _remove = RemoveOnDrop(expected_copy());
    rt().block_on(async {
        let (host, _ctl) = connect(&fx, Side::Server).await;
        assert_eq!(host.socket_tool(), "ss");
        let exe = host
            .twlab_exe(Path::new(env!("CARGO_BIN_EXE_twlab")))
            .await
            .unwrap();
        let mut server = start_serve(&host, &exe, &fx).await;
        let closed = 4;
        closed_requests(SocketAddr::from((fx.addr, 8080)), closed);

        let listening = Endpoint::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 8080);
        let listen_counts = host.socket_counts(listening).await;
        let endpoint = Endpoint::new(fx.addr.into(), 8080);
        let counts = host.socket_counts(endpoint).await;
        // Stopped before any assertion, so a failure leaves nothing running.
        let _ = server.stop(Signal::SIGTERM, GRACE).await;
        host.close().await;
        let listen_counts = listen_counts.unwrap();
        assert!(
            listen_counts.get("LISTEN").copied().unwrap_or(0) >= 1,
            "no LISTEN for [::]:8080 (needs the real twlab::measure::sockets_text): {listen_counts:?}"
        );
        let counts = counts.unwrap();
        assert!(
            counts.get("TIME_WAIT").copied().unwrap_or(0) >= closed as u64,
            "fewer than {closed} TIME_WAIT for {endpoint}: {counts:?}"
        );
    });
}

/// Echo one connection on a unix socket, in a thread.
fn echo_server(path: &Path) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(path).expect("bind the echo socket");
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = Vec::new();
            if conn.read_to_end(&mut buf).is_ok() {
                let _ = conn.write_all(&buf);
            }
        }
    })
}

#[test]
fn ssh_forwards_unix_sockets_and_the_docker_socket() {
    if !require_root("ssh_forwards_unix_sockets_and_the_docker_socket") {
        return;
    }
    let fx = SshdHost::start("forward");
    rt().block_on(async {
        let (host, ctl) = connect(&fx, Side::Server).await;

        // A socket on the host (the fixture shares this filesystem).
        let remote = fx.dir().join("echo.sock");
        let echo = echo_server(&remote);
        let local = ctl.path().join("echo-fwd.sock");
        host.forward_unix_socket(&local, &remote).await.unwrap();
        let reply = tokio::task::spawn_blocking({
            let local = local.clone();
            move || {
                let mut s = UnixStream::connect(&local).expect("connect to the forward");
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(b"hello through ssh\n").unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut reply = String::new();
                s.read_to_string(&mut reply).unwrap();
                reply
            }
        })
        .await
        .unwrap();
        assert_eq!(reply, "hello through ssh\n");
        echo.join().unwrap();
        // The same local path twice is refused with a clear message.
        let err = host.forward_unix_socket(&local, &remote).await.unwrap_err();
        assert!(err.to_string().contains("exists already"), "{err}");

        // The Docker engine of the host (this machine's) at a local socket.
        assert!(
            Path::new("/var/run/docker.sock").exists(),
            "this test needs a Docker engine at /var/run/docker.sock"
        );
        let docker = ctl.path().join("docker.sock");
        host.forward_docker_socket(&docker).await.unwrap();
        let resp = tokio::task::spawn_blocking({
            let docker = docker.clone();
            move || {
                let mut s = UnixStream::connect(&docker).expect("connect to the docker forward");
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(b"GET /_ping HTTP/1.0\r\n\r\n").unwrap();
                let mut resp = String::new();
                s.read_to_string(&mut resp).unwrap();
                resp
            }
        })
        .await
        .unwrap();
        assert!(
            resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200"),
            "{resp}"
        );
        assert!(resp.ends_with("\r\n\r\nOK"), "{resp}");

        host.close().await;
        assert!(
            !local.exists() && !docker.exists(),
            "forward sockets left behind"
        );
    });
}
