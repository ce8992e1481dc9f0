//! The remote side of an SSH host: the shell snippets twlab runs there
//! (the PID-file wrapper, kill, tidy, probes, the copy of twlab itself),
//! every argument quoted, and ssh's errors turned into plain sentences.

use super::*;

/// The remote wrapper of a long-running program (`sh -c WRAPPER twlab-remote
/// PIDFILE ARGV...`). The pidfile's directory must be one only the user
/// the program runs as can write: it is made `0700` when missing, and a
/// symlink, or a directory of another user, is refused (exit 125) — root
/// later signals whatever PID the file holds. It claims the pidfile
/// exclusively (`set -C`: a file of the same name, or a symlink planted
/// there, makes it fail rather than write through it), then a child shell
/// writes its own PID and `exec`s the program in the foreground (a
/// background job of a non-interactive shell would have SIGINT ignored, and
/// wrk stops on SIGINT). When the program ends, the pidfile goes and its
/// exit status is passed on.
pub(super) const WRAPPER: &str = r#"f=$1; shift; d=${f%/*}; mkdir -p "${d%/*}" 2>/dev/null; mkdir -m 700 "$d" 2>/dev/null; if [ -L "$d" ] || [ ! -d "$d" ] || [ ! -O "$d" ] || ! chmod 700 "$d"; then echo "twlab: $d is not a directory of this user alone; refusing to keep a pidfile there" >&2; exit 125; fi; (set -C; : > "$f") || exit 125; sh -c 'echo $$ > "$1"; shift; exec "$@"' twlab-remote "$f" "$@"; rc=$?; rm -f "$f"; exit $rc"#;
/// Deliver a signal to the program of a pidfile (`sh -c KILL twlab-kill
/// PIDFILE SIG`). A signal sent right after the start waits (2 s at most)
/// for the PID to be written; once the program has ended its pidfile is gone
/// and nothing is signalled. A pidfile that is a symlink, belongs to
/// another user or holds anything but a positive PID is ignored. Always
/// exits 0.
pub(super) const KILL: &str = concat!(
    r#"f=$1; i=0; while [ ! -s "$f" ]; do [ "$i" -ge 20 ] && exit 0; i=$((i+1)); sleep 0.1 2>/dev/null || sleep 1; done; { [ -L "$f" ] || [ ! -O "$f" ]; } && exit 0; p=$(cat "$f" 2>/dev/null); "#,
    r#"case "$p" in ''|0*|*[!0-9]*) exit 0;; esac; kill -s "$2" "$p" 2>/dev/null; exit 0"#
);
/// Remove the pidfiles among `$@` whose program is gone (its wrapper was
/// killed with it and could not); those of running programs stay.
pub(super) const TIDY: &str = r#"for f; do [ -f "$f" ] && [ ! -L "$f" ] && [ -O "$f" ] || continue; p=$(cat "$f" 2>/dev/null); case "$p" in ''|0*|*[!0-9]*) continue;; esac; kill -0 "$p" 2>/dev/null || rm -f "$f"; done"#;
/// Print those of the pidfiles `$@` that exist.
pub(super) const PRESENT: &str = r#"for f; do [ -e "$f" ] && printf '%s\n' "$f"; done; exit 0"#;
/// `twlab clean`'s end of a program a killed twlab left on a host (`sh -c
/// CLEAN_KILL twlab-clean PIDFILE`): SIGKILL to the PID of the pidfile and
/// the pidfile removed; the same checks as [`KILL`] (a symlink, a file of
/// another user or anything but a positive PID is not acted on).
pub const CLEAN_KILL: &str = concat!(
    r#"f=$1; [ -f "$f" ] || exit 0; { [ -L "$f" ] || [ ! -O "$f" ]; } && exit 0; p=$(cat "$f" 2>/dev/null); "#,
    r#"case "$p" in ''|0*|*[!0-9]*) exit 0;; esac; kill -s KILL "$p" 2>/dev/null; rm -f "$f"; exit 0"#
);
/// Which socket listing tool the host has: `ss` (iproute2) or `netstat`.
pub(super) const PROBE: &str = r#"if command -v ss >/dev/null 2>&1; then echo ss; elif command -v netstat >/dev/null 2>&1; then echo netstat; else echo none; fi"#;
/// Is `$1` an executable file? Prints `yes` or `no`.
pub(super) const CHECK_EXE: &str =
    r#"if [ -f "$1" ] && [ -x "$1" ]; then echo yes; else echo no; fi"#;
/// Is `$1` a copy of twlab we can use: executable, ours, `$2` bytes long?
pub(super) const CHECK_COPY: &str = r#"if [ -f "$1" ] && [ -x "$1" ] && [ -O "$1" ] && [ "$(wc -c < "$1" | tr -d ' ')" = "$2" ]; then echo present; elif [ -e "$1" ] && [ ! -O "$1" ]; then echo foreign; else echo absent; fi"#;
/// Write stdin to `$1` through a temporary file, then make it executable and
/// give it its final name in one step.
pub(super) const COPY: &str = r#"t=$(mktemp /tmp/twlab-copy.XXXXXXXX) || exit 1; if cat > "$t" && chmod 755 "$t" && mv -f "$t" "$1"; then exit 0; fi; rm -f "$t"; exit 1"#;
pub(super) const SUDO: [&str; 3] = ["sudo", "-n", "--"];
/// The command line the remote login shell runs for `argv`: each argument
/// quoted on its own, `sudo -n --` first when `sudo`.
pub fn remote_line(argv: &[String], sudo: bool) -> String {
    let prefix = if sudo { &SUDO[..] } else { &[] };
    prefix
        .iter()
        .copied()
        .chain(argv.iter().map(String::as_str))
        .map(|a| shell_escape::unix::escape(Cow::Borrowed(a)).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
/// An `ssh` client of the master at `ctl` running `line`, in the form the
/// openssh crate uses for its own commands: the host name is a placeholder
/// (the control socket decides), and port 9 (discard) makes sure that a
/// dead master never leads to a fresh connection. `ControlMaster=no` keeps a
/// user's `ControlMaster yes` from turning the client into a master.
pub fn mux_command(ctl: &Path, line: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-S")
        .arg(ctl)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ControlMaster=no",
            "-T",
            "-p",
            "9",
        ])
        .args(["none", "--", line]);
    cmd
}
/// `sh -c SCRIPT NAME ARGS...` as an argv.
pub(super) fn script(body: &str, name: &str, args: &[&str]) -> Vec<String> {
    ["sh", "-c", body, name]
        .iter()
        .chain(args.iter())
        .map(|s| s.to_string())
        .collect()
}
pub(super) fn kill_argv(pidfile: &str, sig: Signal) -> Vec<String> {
    let name = sig.as_str();
    let name = name.strip_prefix("SIG").unwrap_or(name);
    script(KILL, "twlab-kill", &[pidfile, name])
}
/// Where the pidfiles of programs run as the user `uid` live on a host:
/// [`PIDFILE_DIR`] for root (under `/run`, which only root can write),
/// else a `0700` directory of that user in `/tmp` (`/tmp` is sticky: no
/// one else can replace it once made; one made by another user first is
/// refused by [`WRAPPER`]).
pub fn pidfile_dir(uid: u32) -> String {
    if uid == 0 {
        PIDFILE_DIR.to_string()
    } else {
        format!("/tmp/twlab-{uid}")
    }
}
/// A fresh pidfile name in `dir`: `DIR/twlab-<16 hex>.pid`.
pub(super) fn new_pidfile(dir: &str) -> String {
    format!("{dir}/twlab-{:016x}.pid", fastrand::u64(..))
}
/// `twlab clean`'s SIGKILL for the program of a remote pidfile, as an argv.
pub fn clean_kill_argv(pidfile: &str) -> Vec<String> {
    script(CLEAN_KILL, "twlab-clean", &[pidfile])
}
/// Where a copy of this twlab goes on a host.
pub fn remote_copy_path(hash: u64) -> String {
    format!("/tmp/twlab-{}-{hash:016x}", env!("CARGO_PKG_VERSION"))
}
/// A cheap content hash of a file (FNV-1a over 64-bit words, then the
/// length) and its size. Not a defence against a forged file — ownership
/// on the host is checked for that — only a name that changes with the build.
pub fn content_hash(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::io::Read;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut size: u64 = 0;
    // Words are taken from the stream, not per read, so the hash does not
    // depend on how reads happen to split the file.
    let mut carry: Vec<u8> = Vec::with_capacity(8);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        let mut data = &buf[..n];
        if !carry.is_empty() {
            let take = (8 - carry.len()).min(data.len());
            carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if carry.len() < 8 {
                continue;
            }
            let mut w = [0u8; 8];
            w.copy_from_slice(&carry);
            hash = (hash ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
            carry.clear();
        }
        let mut words = data.chunks_exact(8);
        for chunk in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            hash = (hash ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
        }
        carry.extend_from_slice(words.remainder());
    }
    for b in carry {
        hash = (hash ^ u64::from(b)).wrapping_mul(PRIME);
    }
    hash = (hash ^ size).wrapping_mul(PRIME);
    Ok((hash, size))
}
/// Wait (at most `limit`) for the kill commands under way to end.
pub(super) fn settle(pending: &Mutex<Vec<std::thread::JoinHandle<()>>>, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let busy = match pending.lock() {
            Ok(mut p) => {
                p.retain(|h| !h.is_finished());
                !p.is_empty()
            }
            Err(_) => false,
        };
        if !busy || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
/// An openssh error with its sources, ssh's own words in it (`ssh -E` log
/// of the master), one line per message line.
pub(super) fn ssh_error_text(e: &openssh::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        let lines: Vec<&str> = msg
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if !lines.is_empty() {
            text.push_str(":\n  ");
            text.push_str(&lines.join("\n  "));
        }
        source = s.source();
    }
    text
}
/// The connection failure, with a hint for the usual causes.
pub(super) fn connect_error_text(e: &openssh::Error, side: Side) -> String {
    let text = ssh_error_text(e);
    let hint = if text.contains("Host key verification failed")
        || text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        format!(
            "\n  hint: the host key is not in known_hosts, or differs from it; twlab never accepts a host key itself: check the host's key fingerprint and add it to known_hosts (or name the file with hosts.{side}.known_hosts)"
        )
    } else if text.contains("Permission denied") {
        format!(
            "\n  hint: no key was accepted (BatchMode: no password is asked): set hosts.{side}.identity, or load the key into ssh-agent"
        )
    } else {
        String::new()
    };
    format!("cannot connect: {text}{hint}")
}
/// What messages show for `argv` run on `destination`:
/// `ssh admin@host -- [sudo -n --] ARGV`.
pub fn shown_argv(destination: &str, argv: &[String], sudo: bool) -> Vec<String> {
    let mut shown = vec!["ssh".to_string(), destination.to_string(), "--".into()];
    if sudo {
        shown.extend(SUDO.iter().map(|s| s.to_string()));
    }
    shown.extend(argv.iter().cloned());
    shown
}
