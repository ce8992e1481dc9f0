//! `twlab doctor`: what this machine can and cannot do, and how to fix it.
//!
//! Each check says ok or not and, when not, the one command that fixes it,
//! so a new user gets from a fresh machine to a first report without
//! reading the source. Optional things (the load tools — every one of
//! [`crate::load::client::TOOLS`] is listed, found or not, with its
//! version —, Docker, ssh, debootstrap, the Tomcat and wrk images) never
//! make doctor fail: when they are missing their line
//! starts with `--` and says what needs them.
//!
//! `twlab doctor --lab FILE` also checks each host of a lab file for real,
//! changing nothing: it connects (SSH hosts with the strict host key check
//! of a run), reads the kernel release and a sysctl, finds the socket
//! listing tool and `conntrack`, looks for each load tool on the client and asks a
//! host's Docker engine for its version when the host has `docker: true`.

use crate::common::endpoint::{Endpoint, Side};
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::lab::{self, Host, real::RealHost};
use crate::scenario::SysctlName;
use crate::scenario::labfile::{HostSpec, LabSpec};
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

/// The Tomcat image of the shipped Docker scenarios (docker/tomcat/build.sh).
pub const TOMCAT_IMAGE: &str = "twlab/tomcat:10.1";

/// The images doctor looks for in the local engine: check name, image,
/// what it is for, how to build it.
const IMAGES: [(&str, &str, &str, &str); 2] = [
    (
        "tomcat-image",
        TOMCAT_IMAGE,
        "optional: the image of scenarios/tw_reuse_tomcat.yaml",
        "docker/tomcat/build.sh (from Debian packages, no registry needed)",
    ),
    (
        "wrk-image",
        crate::scenario::DEFAULT_CLIENT_IMAGE,
        "optional: the image of client.via: docker",
        "docker/wrk/build.sh (from Debian packages, no registry needed)",
    ),
];

/// The sysctl read on every lab host: one that every scenario can touch.
const PROBE_SYSCTL: &str = "net.ipv4.tcp_tw_reuse";

/// How long one check of a lab host may take (connecting has its own 10 s).
const HOST_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// One finding.
pub struct Check {
    pub name: String,
    /// Does not make doctor fail: passed, or optional and missing.
    pub ok: bool,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// Optional and not there: shown with its fix, doctor still passes.
    fn absent(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The machine checks, then (with a lab file) the checks of its hosts. A
/// lab file that does not parse is refused first ([`Error::Invalid`] with
/// `file:line`), before anything is checked.
pub async fn run(lab_file: Option<&Path>) -> Result<Vec<Check>> {
    let spec = lab_file.map(LabSpec::load).transpose()?;
    let mut out = checks().await;
    if let Some(spec) = &spec {
        out.extend(lab_checks(spec).await);
    }
    Ok(out)
}

/// Run every check of this machine (reads only; creates nothing but a probe
/// namespace that is removed at once).
pub async fn checks() -> Vec<Check> {
    let mut out = Vec::new();
    let root = nix::unistd::geteuid().is_root();
    out.push(Check {
        name: "root".into(),
        ok: root,
        detail: if root {
            "running as root".into()
        } else {
            "not root: namespaces, veth and sysctls need CAP_NET_ADMIN and CAP_SYS_ADMIN".into()
        },
        fix: (!root).then(|| "run twlab with sudo".into()),
    });
    out.push(Check::pass("kernel", crate::run::kernel_release()));
    for (tool, why, pkg, required) in [
        (
            "ip",
            "optional: to look inside a lab (`ip netns exec`); twlab builds it in-process",
            "iproute2",
            false,
        ),
        (
            "conntrack",
            "optional: to list entries by hand; twlab counts them over ctnetlink",
            "conntrack",
            false,
        ),
        (
            "ssh",
            "optional: reaches the SSH hosts of a lab file",
            "openssh-client",
            false,
        ),
        (
            "debootstrap",
            "optional: builds the Tomcat and wrk images without a registry (docker/*/build.sh)",
            "debootstrap",
            false,
        ),
    ] {
        let found = lab::which(tool);
        out.push(Check {
            name: tool.into(),
            ok: found.is_some() || !required,
            detail: match &found {
                Some(p) => format!("{} — {why}", p.display()),
                None => format!("missing — {why}"),
            },
            fix: found.is_none().then(|| format!("apt-get install {pkg}")),
        });
    }
    out.extend(tool_checks().await);
    out.extend(docker_checks().await);
    if root {
        let name = format!("{}doctor-{}", lab::LABEL_PREFIX, std::process::id());
        let owned = name.clone();
        let made = tokio::task::spawn_blocking(move || crate::lab::netns::sys::add_netns(&owned))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        let ok = made.is_ok();
        let detail = match &made {
            Ok(()) => "a network namespace can be made (in-process, as `ip netns add` does)".into(),
            Err(e) => format!("cannot make a network namespace: {e}"),
        };
        if ok {
            crate::lab::netns::remove_netns(&name).await;
        }
        out.push(Check {
            name: "namespaces".into(),
            ok,
            detail,
            fix: (!ok)
                .then(|| "network namespaces need a kernel with CONFIG_NET_NS and root".into()),
        });
    }
    let ct = std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists();
    out.push(Check {
        name: "nf_conntrack".into(),
        ok: ct,
        detail: if ct {
            "conntrack module loaded".into()
        } else {
            "nf_conntrack is not loaded (it loads with the first ct rule)".into()
        },
        fix: (!ct).then(|| "modprobe nf_conntrack".into()),
    });
    // Optional: without it the embedded lab counts sockets by walking.
    out.push(match crate::measure::sock_gauge::shared() {
        Ok(_) => Check::pass(
            "socket gauge",
            "loads: the embedded lab counts sockets from a BPF map (no walk of the socket table)",
        ),
        Err(e) => Check::absent(
            "socket gauge",
            format!(
                "unavailable ({e}): the embedded lab counts sockets by walking the socket table"
            ),
            "run as root on a kernel with BTF (/sys/kernel/btf/vmlinux) that allows BPF programs",
        ),
    });
    let netem = std::path::Path::new("/proc/net/psched").exists()
        && std::fs::read_to_string("/proc/modules")
            .unwrap_or_default()
            .contains("sch_netem");
    out.push(Check::pass(
        "netem",
        if netem {
            "sch_netem loaded: link delay could be emulated"
        } else {
            "sch_netem not loaded: link delay is not emulated (not needed for the shipped scenarios)"
        },
    ));
    out
}

/// How long a load tool may take to print its version.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// Every load tool ([`crate::load::client::TOOLS`]), found or not, with
/// its version: all optional, each one's line says how to install it.
async fn tool_checks() -> Vec<Check> {
    let mut out = Vec::new();
    for tool in crate::load::client::TOOLS {
        let why = format!("optional: client.tool: {}", tool.name());
        let Some(program) = tool.program() else {
            out.push(Check::pass(
                tool.name(),
                format!("{} — {}", tool.install(), tool.describe()),
            ));
            continue;
        };
        out.push(match crate::load::client::tools::local_path(*tool) {
            Some(path) => {
                let version =
                    crate::load::client::tools::local_version(*tool, VERSION_TIMEOUT).await;
                Check::pass(
                    program,
                    format!(
                        "{} ({}) — {why}",
                        path.display(),
                        version.as_deref().unwrap_or("version unknown")
                    ),
                )
            }
            None => Check::absent(program, format!("missing — {why}"), tool.install()),
        });
    }
    out
}

/// This machine's Docker engine and the Tomcat and wrk images in it; all optional.
async fn docker_checks() -> Vec<Check> {
    const WHY: &str = "optional: runs server.kind: docker and client.via: docker on this machine";
    let engine = match within(async {
        let engine = Engine::local().await?;
        let version = engine.version().await?;
        Ok((engine, version))
    })
    .await
    {
        Ok(found) => found,
        Err(e) => {
            let mut out = vec![Check::absent(
                "docker",
                format!("no engine answers — {WHY}:\n{e}"),
                "apt-get install docker.io && systemctl start docker",
            )];
            for (name, image, _, fix) in IMAGES {
                out.push(Check::absent(
                    name,
                    format!("{image}: no local engine to look in"),
                    format!("once Docker runs: {}", fix.split(' ').next().unwrap_or(fix)),
                ));
            }
            return out;
        }
    };
    let (engine, version) = engine;
    let mut out = vec![Check::pass(
        "docker",
        format!("{}: Docker {version} — {WHY}", engine.describe),
    )];
    for (name, image, why, fix) in IMAGES {
        out.push(match within(engine.image_id(image)).await {
            Ok(Some(id)) => {
                Check::pass(name, format!("{image} present ({}) — {why}", short_id(&id)))
            }
            Ok(None) => Check::absent(
                name,
                format!("{image} is not in the local engine — {why}"),
                fix,
            ),
            Err(e) => Check::absent(name, format!("{image}: cannot look: {e}"), fix),
        });
    }
    out
}

/// `sha256:367db9e35939...` → `sha256:367db9e35939`.
fn short_id(id: &str) -> &str {
    let end = id.find(':').map_or(0, |i| i + 1) + 12;
    id.get(..end).unwrap_or(id)
}

/// A future bounded by [`HOST_CHECK_TIMEOUT`].
async fn within<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(HOST_CHECK_TIMEOUT, fut)
        .await
        .map_err(|_| {
            Error::env(format!(
                "no answer within {}s",
                HOST_CHECK_TIMEOUT.as_secs()
            ))
        })?
}

/// Check both hosts of a lab file, server first.
pub async fn lab_checks(spec: &LabSpec) -> Vec<Check> {
    let mut out = Vec::new();
    let control_dir = match tempfile::Builder::new().prefix("twlab-ssh-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            out.push(Check::fail(
                "lab",
                format!("cannot make a directory for SSH control sockets: {e}"),
                "make the temporary directory writable (TMPDIR)",
            ));
            return out;
        }
    };
    for (role, _) in spec.hosts.roles() {
        host_checks(spec, role, control_dir.path(), &mut out).await;
    }
    out
}

/// The checks of one host; after a failed connection only that one.
async fn host_checks(
    spec: &LabSpec,
    role: crate::common::endpoint::HostRole,
    control_dir: &Path,
    out: &mut Vec<Check>,
) {
    let side = role.side;
    let Some(h) = spec.hosts.at(role) else {
        return;
    };
    // `server.ssh`, `client.ssh`, and `client2.ssh` for the second of
    // several client hosts.
    let label = role.to_string().replace(' ', "");
    let name = |what: &str| format!("{label}.{what}");
    // "on admin@h: " before a fix that runs on an SSH host.
    let on = match &h.ssh {
        Some(d) => format!("on {}: ", d.0),
        None => String::new(),
    };
    let host = match within(RealHost::connect(h, role, control_dir)).await {
        Ok(host) => host,
        Err(e) => {
            let (detail, fix) = connect_failure(h, side, &e.to_string());
            out.push(Check::fail(name("connect"), detail, fix));
            return;
        }
    };
    let hh = host.as_host();
    out.push(Check::pass(name("connect"), hh.reached_how()));

    out.push(match within(hh.run(&argv(&["uname", "-r"]))).await {
        Ok(release) => Check::pass(name("kernel"), release.trim()),
        Err(e) => Check::fail(
            name("kernel"),
            e.to_string(),
            format!("{on}`uname -r` must run in the login shell (coreutils)"),
        ),
    });

    let probe = SysctlName::parse(PROBE_SYSCTL).expect("a valid sysctl name");
    out.push(match within(hh.read_sysctl(&probe)).await {
        Ok(v) => Check::pass(
            name("sysctl"),
            format!("{PROBE_SYSCTL} = {v} — sysctls can be read"),
        ),
        Err(e) => Check::fail(
            name("sysctl"),
            e.to_string(),
            format!(
                "{on}apt-get install procps (sysctl); with sudo: true, `sudo -n sysctl` must work"
            ),
        ),
    });

    let endpoint = Endpoint::new(spec.server_address(), 9);
    let tool = hh.socket_tool();
    out.push(if tool == "none" {
        Check::fail(
            name("sockets"),
            "neither `ss` (iproute2) nor `netstat` (net-tools) is installed: the host's sockets cannot be counted",
            format!("{on}apt-get install iproute2"),
        )
    } else {
        match within(hh.socket_counts(endpoint)).await {
            Ok(_) => Check::pass(name("sockets"), format!("{tool} — counts the host's sockets")),
            Err(e) => Check::fail(
                name("sockets"),
                format!("{tool} is there, but counting fails: {e}"),
                format!("{on}apt-get install iproute2; with sudo: true, `sudo -n ss` must work"),
            ),
        }
    });

    out.push(conntrack_check(hh, &name("conntrack"), &on, side).await);

    if side == Side::Client {
        for tool in crate::load::client::TOOLS {
            let Some(program) = tool.program() else {
                continue;
            };
            let why = format!(
                "optional: needed for client.tool: {}{}",
                tool.name(),
                if tool.image(crate::scenario::ClientVia::Docker).is_some() {
                    " (not with client.via: docker)"
                } else {
                    ""
                }
            );
            out.push(match within(hh.run(&which_argv(program))).await {
                Ok(path) => Check::pass(name(program), format!("{} — {why}", path.trim())),
                Err(_) => Check::absent(
                    name(program),
                    format!("missing — {why}"),
                    format!("{on}{}", tool.install()),
                ),
            });
        }
    }

    if h.docker {
        out.push(
            match within(async {
                let engine = host.docker_engine(control_dir).await?;
                let version = engine.version().await?;
                Ok(format!("{}: Docker {version}", engine.describe))
            })
            .await
            {
                Ok(detail) => Check::pass(name("docker"), detail),
                Err(e) => Check::fail(
                    name("docker"),
                    e.to_string(),
                    match &h.ssh {
                        Some(_) => format!(
                            "{on}run dockerd (systemctl start docker) and give the SSH user access to {} (root or the docker group)",
                            lab::ssh::DOCKER_SOCKET
                        ),
                        None => "apt-get install docker.io && systemctl start docker".into(),
                    },
                ),
            },
        );
    }

    host.close().await;
}

/// `conntrack -C` answers; when it does not, whether conntrack is there at all.
async fn conntrack_check(host: &dyn Host, name: &str, on: &str, side: Side) -> Check {
    const WHY: &str = "counts the host's conntrack entries (collect.conntrack)";
    let e = match within(host.run(&argv(&["conntrack", "-C"]))).await {
        Ok(n) => {
            return Check::pass(name, format!("conntrack -C: {} entries — {WHY}", n.trim()));
        }
        Err(e) => e,
    };
    match within(host.run(&which_argv("conntrack"))).await {
        Ok(path) => Check::fail(
            name,
            format!("{} is there, but `conntrack -C` fails: {e}", path.trim()),
            format!(
                "{on}conntrack needs root: connect as root or set hosts.{side}.sudo: true; modprobe nf_conntrack when the module is not loaded"
            ),
        ),
        Err(_) => Check::fail(
            name,
            format!("missing — {WHY}"),
            format!("{on}apt-get install conntrack"),
        ),
    }
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `command -v PROGRAM` in a shell: prints its path, fails when missing.
fn which_argv(program: &str) -> Vec<String> {
    argv(&["sh", "-c", r#"command -v "$1""#, "twlab-which", program])
}

/// The host part of `[user@]host` (brackets of an IPv6 address removed).
fn host_of(destination: &str) -> &str {
    let host = destination.rsplit('@').next().unwrap_or(destination);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// A failed connection: ssh's message, and the fix for its usual causes.
fn connect_failure(h: &HostSpec, side: Side, message: &str) -> (String, String) {
    let Some(destination) = &h.ssh else {
        return (message.to_string(), "see the message".to_string());
    };
    let host = host_of(&destination.0);
    let known_hosts = h
        .known_hosts
        .as_ref()
        .map_or_else(|| "~/.ssh/known_hosts".into(), |p| p.display().to_string());
    let keyscan = match h.port {
        Some(p) => format!("ssh-keyscan -p {} {host}", p.0),
        None => format!("ssh-keyscan {host}"),
    };
    // Our fix replaces the connection error's own hint.
    let without_hint = || {
        message
            .lines()
            .filter(|l| !l.trim_start().starts_with("hint:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if message.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        (
            without_hint(),
            format!(
                "the host key differs from the one in {known_hosts}: find out why first; if the host was reinstalled, ssh-keygen -R {host} -f {known_hosts}, then add the new key, e.g. {keyscan} >> {known_hosts} after checking its fingerprint"
            ),
        )
    } else if message.contains("Host key verification failed") {
        (
            without_hint(),
            format!(
                "add the host key to known_hosts, e.g. {keyscan} >> {known_hosts} after checking its fingerprint (twlab never accepts a host key itself)"
            ),
        )
    } else if message.contains("Permission denied") {
        (
            without_hint(),
            format!(
                "no key was accepted (BatchMode asks for no password): set hosts.{side}.identity, or load the key into ssh-agent; `ssh {} true` must work without a prompt",
                destination.0
            ),
        )
    } else if message.contains("sudo -n true") {
        (
            message.to_string(),
            "let this user run commands with sudo without a password (NOPASSWD), or connect as root"
                .to_string(),
        )
    } else {
        (
            message.to_string(),
            format!(
                "`ssh -o BatchMode=yes {} true` must work from this machine (address, port, sshd running)",
                destination.0
            ),
        )
    }
}

/// Render the checks for the terminal: `ok`, `FAIL`, or `--` for an
/// optional thing that is missing; the fix under what it fixes.
pub fn render(checks: &[Check]) -> String {
    let width = checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max(12);
    let indent = " ".repeat(5 + width + 1);
    let mut s = String::new();
    for c in checks {
        let mark = match (c.ok, &c.fix) {
            (false, _) => "FAIL",
            (true, Some(_)) => "--  ",
            (true, None) => "ok  ",
        };
        let mut lines = c.detail.lines().map(str::trim_end);
        let _ = writeln!(
            s,
            "{mark} {:<width$} {}",
            c.name,
            lines.next().unwrap_or("")
        );
        for line in lines {
            let _ = writeln!(s, "{indent}{line}");
        }
        if let Some(fix) = &c.fix {
            let _ = writeln!(s, "{indent}fix: {fix}");
        }
    }
    s
}

#[cfg(test)]
mod tests;
