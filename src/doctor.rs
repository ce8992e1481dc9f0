//! `twlab doctor`: what this machine can and cannot do, and how to fix it.
//!
//! Each check says ok or not and, when not, the one command that fixes it,
//! so a new user gets from a fresh machine to a first report without
//! reading the source.

use crate::lab;
use std::fmt::Write;

/// One finding.
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    pub fix: Option<String>,
}

/// Run every check (reads only; creates nothing but a probe namespace that
/// is removed at once).
pub async fn checks() -> Vec<Check> {
    let mut out = Vec::new();
    let root = nix::unistd::geteuid().is_root();
    out.push(Check {
        name: "root",
        ok: root,
        detail: if root {
            "running as root".into()
        } else {
            "not root: namespaces, veth and sysctls need CAP_NET_ADMIN and CAP_SYS_ADMIN".into()
        },
        fix: (!root).then(|| "run twlab with sudo".into()),
    });
    out.push(Check {
        name: "kernel",
        ok: true,
        detail: crate::experiment::kernel_release(),
        fix: None,
    });
    for (tool, why, pkg, required) in [
        ("ip", "builds the lab (namespaces, veth)", "iproute2", true),
        ("sysctl", "applies and verifies sysctls", "procps", true),
        (
            "nft",
            "makes conntrack track the lab (collect.conntrack)",
            "nftables",
            true,
        ),
        (
            "conntrack",
            "counts conntrack entries (collect.conntrack)",
            "conntrack",
            true,
        ),
        ("wrk", "optional client (client.tool: wrk)", "wrk", false),
    ] {
        let found = lab::which(tool);
        out.push(Check {
            name: tool,
            ok: found.is_some() || !required,
            detail: match &found {
                Some(p) => format!("{} — {why}", p.display()),
                None => format!("missing — {why}"),
            },
            fix: found.is_none().then(|| format!("apt-get install {pkg}")),
        });
    }
    if root && lab::which("ip").is_some() {
        let name = format!("{}doctor-{}", lab::LABEL_PREFIX, std::process::id());
        let made = tokio::process::Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .await;
        let ok = matches!(&made, Ok(o) if o.status.success());
        let detail = match &made {
            Ok(o) if o.status.success() => "ip netns add works".to_string(),
            Ok(o) => format!(
                "ip netns add failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("ip netns add failed: {e}"),
        };
        if ok {
            crate::lab::netns::remove_netns(&name).await;
        }
        out.push(Check {
            name: "namespaces",
            ok,
            detail,
            fix: (!ok)
                .then(|| "network namespaces need a kernel with CONFIG_NET_NS and root".into()),
        });
    }
    let ct = std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists();
    out.push(Check {
        name: "nf_conntrack",
        ok: ct,
        detail: if ct {
            "conntrack module loaded".into()
        } else {
            "nf_conntrack is not loaded (it loads with the first ct rule)".into()
        },
        fix: (!ct).then(|| "modprobe nf_conntrack".into()),
    });
    let netem = std::path::Path::new("/proc/net/psched").exists()
        && std::fs::read_to_string("/proc/modules")
            .unwrap_or_default()
            .contains("sch_netem");
    out.push(Check {
        name: "netem",
        ok: true,
        detail: if netem { "sch_netem loaded: link delay could be emulated".into() } else { "sch_netem not loaded: link delay is not emulated (not needed for the shipped scenarios)".into() },
        fix: None,
    });
    out
}

/// Render the checks for the terminal.
pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let _ = writeln!(
            s,
            "{} {:<12} {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
        if let Some(fix) = &c.fix {
            let _ = writeln!(s, "     {:<12} fix: {fix}", "");
        }
    }
    s
}
