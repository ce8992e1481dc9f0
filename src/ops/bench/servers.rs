//! twlab's own load programs against the programs people use: the builtin
//! server against nginx (one worker, `keepalive_requests 100`, `return
//! 404`, as the builtin server closes after 100 requests and answers 404)
//! under the same wrk, and the builtin client against wrk on the same
//! builtin server. Requests/s and CPU per request, each run in a fresh
//! embedded lab, the two programs alternating run by run.
//!
//! CPU is measured where it is exact: a server's from `/proc/PID/stat`
//! before and after the load (it is still running), a client's from
//! `getrusage(RUSAGE_CHILDREN)` around its whole life (it is the only child
//! that ends in that window).

use super::counting::tool_installed;
use super::{BenchOptions, Row, Section, round_order};
use crate::common::counts::ClientStats;
use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::lab::netns::{NetnsLab, SERVER_ADDR};
use crate::lab::run_id::{random_id, reserve_run_id};
use crate::measure::sockdiag::SockDiag;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Child;

pub(super) const PORT: u16 = 8080;

#[derive(Clone, Copy, PartialEq)]
enum Server {
    Builtin,
    Nginx,
}

#[derive(Clone, Copy, PartialEq)]
enum Client {
    Builtin,
    Wrk,
}

/// One run's figures.
#[derive(Default, Clone, Copy)]
struct Figures {
    requests_per_sec: f64,
    /// CPU seconds per request, of the program under comparison.
    cpu_per_request: f64,
}

pub async fn run(opts: &BenchOptions) -> Result<Vec<Row>> {
    let dir = opts.out.join("servers");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut rows = Vec::new();
    let secs = opts.duration.as_secs();
    if tool_installed("wrk") && tool_installed("nginx") {
        let pairs = [(Server::Builtin, Client::Wrk), (Server::Nginx, Client::Wrk)];
        let figs = alternate(opts, &dir, pairs, true).await?;
        let condition = format!("wrk -t2 -c100 -d{secs}s, server on 1 thread");
        rows.extend(pair(
            &figs,
            ["builtin server", "nginx (1 worker, keepalive_requests 100)"],
            &condition,
        ));
    } else {
        rows.push(missing("builtin server vs nginx", "wrk and nginx"));
    }
    if tool_installed("wrk") {
        let pairs = [
            (Server::Builtin, Client::Builtin),
            (Server::Builtin, Client::Wrk),
        ];
        let figs = alternate(opts, &dir, pairs, false).await?;
        let condition = format!("100 connections, 2 threads, {secs}s, builtin server");
        rows.extend(pair(
            &figs,
            ["builtin client (twlab load)", "wrk"],
            &condition,
        ));
    } else {
        rows.push(missing("builtin client vs wrk", "wrk"));
    }
    Ok(rows)
}

/// `opts.runs` rounds of the two set-ups, in alternating order.
async fn alternate(
    opts: &BenchOptions,
    dir: &Path,
    pairs: [(Server, Client); 2],
    server_cpu: bool,
) -> Result<[Vec<Figures>; 2]> {
    let mut figs = [Vec::new(), Vec::new()];
    for round in 0..opts.runs {
        for i in round_order(2, round) {
            let (server, client) = pairs[i];
            figs[i].push(one(opts, dir, server, client, server_cpu).await?);
        }
    }
    Ok(figs)
}

fn missing(what: &str, tools: &str) -> Row {
    Row::new(Section::Servers, what, "").note(format!("not run: needs {tools} installed"))
}

/// Rows for twlab's program and its peer: requests/s and µs CPU/request.
fn pair(figs: &[Vec<Figures>; 2], names: [&str; 2], condition: &str) -> Vec<Row> {
    let rps = |i: usize| {
        Row::new(
            Section::Servers,
            format!("{}: requests/s", names[i]),
            condition,
        )
        .values(
            "req/s",
            figs[i].iter().map(|f| f.requests_per_sec).collect(),
        )
    };
    let cpu = |i: usize| {
        Row::new(
            Section::Servers,
            format!("{}: CPU/request", names[i]),
            condition,
        )
        .values(
            "µs",
            figs[i].iter().map(|f| f.cpu_per_request * 1e6).collect(),
        )
    };
    let (peer_rps, peer_cpu) = (rps(1), cpu(1));
    vec![
        rps(0).against(&peer_rps),
        peer_rps,
        cpu(0).against(&peer_cpu),
        peer_cpu,
    ]
}

/// One run in a fresh lab; `server_cpu` picks whose CPU is measured.
async fn one(
    opts: &BenchOptions,
    dir: &Path,
    server: Server,
    client: Client,
    server_cpu: bool,
) -> Result<Figures> {
    let lab = NetnsLab::create(&reserve_run_id(|| format!("b{}", random_id()))).await?;
    let result = one_in(opts, dir, &lab, server, client, server_cpu).await;
    lab.destroy().await;
    result
}

async fn one_in(
    opts: &BenchOptions,
    dir: &Path,
    lab: &NetnsLab,
    server: Server,
    client: Client,
    server_cpu: bool,
) -> Result<Figures> {
    let argv: Vec<String> = match server {
        Server::Builtin => vec![
            opts.exe.display().to_string(),
            "serve".into(),
            "--listen".into(),
            format!("{SERVER_ADDR}:{PORT}"),
            "--max-keepalive-requests".into(),
            "100".into(),
            "--threads".into(),
            if server_cpu { "1" } else { "0" }.into(),
        ],
        Server::Nginx => {
            let conf = nginx_conf(dir)?;
            vec!["nginx".into(), "-c".into(), conf]
        }
    };
    let mut srv = spawn(lab.host(Side::Server), &argv, &dir.join("server.log"))?;
    let stopped = async |srv: &mut Child| stop(srv).await;
    if let Err(e) = wait_listening(lab).await {
        stopped(&mut srv).await;
        return Err(e);
    }
    let pid = srv.id().unwrap_or(0);
    let cpu_before = proc_cpu_secs(pid);
    let children_before = children_cpu_secs();
    let loaded = load(opts, lab, client).await;
    let cpu_after = proc_cpu_secs(pid);
    let children_after = children_cpu_secs();
    stopped(&mut srv).await;
    let stats = loaded?;
    let cpu = if server_cpu {
        match (cpu_before, cpu_after) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        }
    } else {
        children_after - children_before
    };
    Ok(Figures {
        requests_per_sec: stats.requests_per_sec,
        cpu_per_request: cpu / stats.requests.max(1) as f64,
    })
}

async fn load(opts: &BenchOptions, lab: &NetnsLab, client: Client) -> Result<ClientStats> {
    let secs = opts.duration.as_secs().max(1);
    let url_target = format!("{SERVER_ADDR}:{PORT}");
    let argv: Vec<String> = match client {
        Client::Wrk => vec![
            "wrk".into(),
            "-t2".into(),
            "-c100".into(),
            "--latency".into(),
            format!("-d{secs}s"),
            format!("http://{url_target}/abc"),
        ],
        Client::Builtin => vec![
            opts.exe.display().to_string(),
            "load".into(),
            "--target".into(),
            url_target,
            "--connections".into(),
            "100".into(),
            "--threads".into(),
            "2".into(),
            "--duration".into(),
            format!("{secs}s"),
            "--json".into(),
        ],
    };
    let (mut cmd, shown) = lab.host(Side::Client).command(&argv);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::env(format!("bench: cannot run `{}`: {e}", shown.join(" "))))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Error::env(format!(
            "bench: `{}` failed ({}): {}",
            shown.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    match client {
        Client::Wrk => crate::load::client::wrk::parse_wrk_output(&text)
            .map_err(|e| Error::env(format!("bench: wrk output: {e}"))),
        Client::Builtin => serde_json::from_str(text.trim())
            .map_err(|e| Error::env(format!("bench: twlab load output: {e}"))),
    }
}

pub(super) fn spawn(host: &dyn Host, argv: &[String], log: &Path) -> Result<Child> {
    let (mut cmd, shown) = host.command(argv);
    let file = std::fs::File::create(log).map_err(|e| Error::io(log.display(), e))?;
    let err = file.try_clone().map_err(|e| Error::io(log.display(), e))?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(file)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::env(format!("bench: cannot start `{}`: {e}", shown.join(" "))))
}

/// SIGTERM, 5 s grace, SIGKILL; always reaped.
pub(super) async fn stop(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Until the server's endpoint is listening (10 s at most).
pub(super) async fn wait_listening(lab: &NetnsLab) -> Result<()> {
    let ep = lab.endpoint(PORT);
    let mut diag = SockDiag::open_in_netns(&lab.server.path())
        .map_err(|e| Error::env(format!("bench: sock_diag: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let c = diag
            .count(&ep, Side::Server)
            .map_err(|e| Error::env(format!("bench: sock_diag: {e}")))?;
        if c.get("LISTEN").copied().unwrap_or(0) > 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::env(format!(
        "bench: nothing listens on {} after 10s",
        ep.socket_addr()
    )))
}

/// utime + stime of a live process, in seconds.
pub(super) fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields count from after its `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Some(ticks / hz)
}

/// CPU seconds of every child this process has reaped.
pub(super) fn children_cpu_secs() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(f64::NAN, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

fn nginx_conf(dir: &Path) -> Result<String> {
    let d = dir.display();
    let tmp = dir.join("nginx-tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
    let t = tmp.display();
    let text = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 100;\n\
         client_body_temp_path {t};\n  proxy_temp_path {t};\n  fastcgi_temp_path {t};\n  uwsgi_temp_path {t};\n  scgi_temp_path {t};\n\
         server {{ listen {SERVER_ADDR}:{PORT}; location / {{ return 404; }} }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, text).map_err(|e| Error::io(path.display(), e))?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_of_this_process_is_read_from_proc() {
        let cpu = proc_cpu_secs(std::process::id()).expect("own /proc/PID/stat");
        assert!(cpu >= 0.0);
        assert!(children_cpu_secs() >= 0.0);
    }
}
