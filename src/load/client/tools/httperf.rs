//! `client.tool: httperf`: the classic connection-rate generator
//! (Debian's httperf 0.9.0), built for exactly the load that makes
//! TIME_WAIT: new connections at a fixed rate, each making a few calls and
//! closed by the client.
//!
//! It has no notion of concurrent connections or of a duration, so the
//! scenario's keys map as: `rate` (requests/s) and `close_after` (calls
//! per connection, `--num-calls`) give `--rate = rate / close_after`
//! connections per second, and `--num-conns = that × duration`; both keys
//! are required. httperf closes each connection after its calls (the
//! client is the active closer, as with the builtin client's
//! `close_after`), and `--hog` lets it use the whole ephemeral port range.
//!
//! Its report has counts, status classes, errors by kind, its own CPU time
//! and mean reply times, but no latency percentiles and no maximum: those
//! stay 0 and a note says they are not measured. httperf uses `select()`, so it keeps at
//! most about 1000 connections open at once (FD_SETSIZE); it prints a
//! warning about that on stderr, which is harmless below that.
//!
//! Parsed from real output captured against `twlab serve`; the fixtures are
//! in `tests/fixtures/httperf/`.

use super::text::{count, first_line, number, round_to};
use super::{Key, LoadTool, Target};
use crate::common::counts::{ClientStats, Counts, ErrorCounts, Latency};
use crate::common::names::LoadMetric;
use crate::scenario::ClientSpec;

pub struct Httperf;

impl LoadTool for Httperf {
    fn name(&self) -> &'static str {
        "httperf"
    }

    fn describe(&self) -> &'static str {
        "httperf: new connections at a fixed rate (`rate` / `close_after` per second), each closed by the client after `close_after` requests; Debian's httperf."
    }

    fn program(&self) -> Option<&'static str> {
        Some("httperf")
    }

    fn install(&self) -> &'static str {
        "apt-get install httperf"
    }

    fn version_argv(&self) -> Option<Vec<String>> {
        Some(vec!["httperf".into(), "--version".into()])
    }

    /// `httperf: httperf-0.9.0 compiled without DEBUG …` → `httperf-0.9.0`.
    fn version(&self, output: &str) -> Option<String> {
        output
            .split_whitespace()
            .find(|w| w.starts_with("httperf-"))
            .map(|w| w.trim_end_matches(['.', ',']).to_string())
    }

    fn supports(&self, key: Key) -> bool {
        matches!(
            key,
            Key::Duration | Key::Timeout | Key::Path | Key::Rate | Key::CloseAfter
        )
    }

    fn check(&self, spec: &ClientSpec) -> Result<(), String> {
        if spec.rate.is_none() || spec.close_after == 0 {
            return Err(
                "client.tool: httperf opens connections at a rate and closes each after its requests: set client.rate (requests/s) and client.close_after (requests per connection, httperf's --num-calls)"
                    .into(),
            );
        }
        Ok(())
    }

    fn argv(&self, spec: &ClientSpec, target: &Target<'_>) -> Vec<String> {
        let calls = spec.close_after.max(1);
        let rate = spec.rate.unwrap_or(1.0);
        let conn_rate = rate / calls as f64;
        let conns = (conn_rate * spec.duration.0.as_secs_f64()).ceil().max(1.0) as u64;
        vec![
            "httperf".into(),
            "--hog".into(),
            format!("--server={}", target.endpoint.addr),
            format!("--port={}", target.endpoint.port),
            format!("--uri={}", spec.path),
            format!("--rate={}", round_to(conn_rate, 1e6)),
            format!("--num-conns={conns}"),
            format!("--num-calls={calls}"),
            format!("--timeout={}", spec.timeout.0.as_secs_f64()),
        ]
    }

    fn parse(&self, stdout: &str, _spec: &ClientSpec) -> Result<ClientStats, String> {
        parse_httperf_output(stdout)
    }
}

/// Parse httperf's report into [`ClientStats`] (tool `httperf`).
///
/// Required: `Total: connections C requests R replies P test-duration T s`,
/// `Reply status:` and both `Errors:` lines. Optional: `Reply time [ms]`
/// (the mean latency), `CPU time [s]`.
pub fn parse_httperf_output(text: &str) -> Result<ClientStats, String> {
    let mut total: Option<(u64, u64, f64)> = None;
    let mut classes: Option<Counts> = None;
    let mut reply_ms: Option<f64> = None;
    let mut cpu: Option<f64> = None;
    let mut errors = ErrorCounts::default();
    let mut errno = Counts::new();
    let mut other_errors = 0u64;
    let mut error_lines = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = |e: String| format!("httperf output line {} `{line}`: {e}", i + 1);
        if let Some(rest) = line.strip_prefix("Total:") {
            let kv = pairs(rest);
            let get = |k: &str| {
                kv.iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| format!("no `{k}`"))
            };
            let connections = get("connections").and_then(count).map_err(at)?;
            let replies = get("replies").and_then(count).map_err(at)?;
            let secs = get("test-duration").and_then(number).map_err(at)?;
            total = Some((connections, replies, secs));
        } else if let Some(rest) = line.strip_prefix("Reply status:") {
            let mut c = Counts::new();
            for part in rest.split_whitespace() {
                let (class, n) = part
                    .split_once('=')
                    .ok_or_else(|| at(format!("`{part}` is not CLASS=N")))?;
                c.insert(class.to_string(), count(n).map_err(at)?);
            }
            classes = Some(c);
        } else if let Some(rest) = line.strip_prefix("Reply time [ms]:") {
            let kv = pairs(rest);
            let mut sum = 0.0;
            for (_, v) in kv
                .iter()
                .filter(|(k, _)| *k == "response" || *k == "transfer")
            {
                sum += number(v).map_err(at)?;
            }
            reply_ms = Some(round_to(sum, 1e6));
        } else if let Some(rest) = line.strip_prefix("CPU time [s]:") {
            let kv = pairs(rest.split('(').next().unwrap_or(""));
            let mut sum = 0.0;
            for (_, v) in kv.iter().filter(|(k, _)| *k == "user" || *k == "system") {
                sum += number(v).map_err(at)?;
            }
            cpu = Some(round_to(sum, 1e6));
        } else if let Some(rest) = line.strip_prefix("Errors:") {
            error_lines += 1;
            for (kind, v) in pairs(rest) {
                let n = count(v).map_err(at)?;
                match kind {
                    "total" => {}
                    "client-timo" | "socket-timo" => errors.timeout += n,
                    "connrefused" => {
                        errors.connect += n;
                        if n > 0 {
                            errno.insert("ECONNREFUSED".into(), n);
                        }
                    }
                    "addrunavail" => {
                        errors.connect += n;
                        if n > 0 {
                            errno.insert("EADDRNOTAVAIL".into(), n);
                        }
                    }
                    "connreset" => errors.read += n,
                    "fd-unavail" | "ftab-full" | "other" => other_errors += n,
                    other => return Err(at(format!("unknown error kind `{other}`"))),
                }
            }
        }
    }
    let Some((connections, replies, secs)) = total else {
        return Err(format!(
            "not httperf output: no `Total: connections … replies … test-duration` line (first line: `{}`)",
            first_line(text)
        ));
    };
    let classes = classes.ok_or("httperf output has no `Reply status:` line")?;
    if error_lines < 2 {
        return Err("httperf output lacks its two `Errors:` lines".into());
    }
    let ok: u64 = ["2xx", "3xx"].iter().filter_map(|k| classes.get(*k)).sum();
    let counted: u64 = classes.values().sum();
    let mut notes = vec![super::unreported_note("httperf", "its mean reply time")];
    if other_errors > 0 {
        notes.push(format!(
            "httperf counted {other_errors} errors of no socket kind (fd-unavail, ftab-full, other): it ran out of file descriptors (FD_SETSIZE) or met something else; they are in no error column"
        ));
    }
    Ok(ClientStats {
        tool: "httperf".into(),
        duration_secs: secs,
        requests: replies,
        requests_per_sec: if secs > 0.0 {
            round_to(replies as f64 / secs, 100.0)
        } else {
            0.0
        },
        responses_by_class: Some(classes),
        non_2xx_3xx: counted.saturating_sub(ok),
        connections_opened: Some(connections),
        errors: ErrorCounts {
            connect_by_errno: Some(errno),
            ..errors
        },
        latency: Latency {
            mean_ms: reply_ms.unwrap_or(0.0),
            ..Default::default()
        },
        cpu_secs: cpu,
        notes,
        schedule: None,
        not_measured: super::PERCENTILES
            .iter()
            .chain(&[LoadMetric::LatencyMax.name()])
            .map(|m| m.to_string())
            .collect(),
    })
}

/// `connections 30 requests 30 replies 30 test-duration 2.901 s` → pairs
/// of a word and the number after it.
fn pairs(rest: &str) -> Vec<(&str, &str)> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[1].starts_with(|c: char| c.is_ascii_digit()))
        .map(|w| (w[0], w[1]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn parsed(name: &str) -> ClientStats {
        parse_httperf_output(&super::super::fixture("httperf", name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn a_run_against_the_builtin_server() {
        let s = parsed("ok_404.txt");
        assert_eq!(s.tool, "httperf");
        assert_eq!(s.connections_opened, Some(600));
        assert_eq!(s.requests, 6000);
        assert_eq!(s.duration_secs, 3.075);
        assert_eq!(s.requests_per_sec, 1951.22);
        assert_eq!(
            s.responses_by_class.as_ref().and_then(|c| c.get("4xx")),
            Some(&6000)
        );
        assert_eq!(s.non_2xx_3xx, 6000);
        assert_eq!(s.latency.mean_ms, 3.2);
        assert_eq!(s.cpu_secs, Some(1.71));
        assert_eq!(s.errors.total(), 0);
        assert!(s.notes[0].contains("not measured"), "{:?}", s.notes);
    }

    #[test]
    fn refused_timed_out_and_interrupted_runs() {
        let r = parsed("refused.txt");
        assert_eq!((r.requests, r.errors.connect), (0, 50));
        assert_eq!(
            r.errors
                .connect_by_errno
                .as_ref()
                .and_then(|e| e.get("ECONNREFUSED")),
            Some(&50)
        );
        let t = parsed("timeouts.txt");
        assert_eq!(
            (t.requests, t.errors.timeout, t.errors.total()),
            (0, 20, 20)
        );
        // SIGINT: httperf reports what it did so far.
        let i = parsed("interrupted.txt");
        assert_eq!((i.connections_opened, i.requests), (Some(201), 993));
        assert_eq!(i.duration_secs, 2.003);
    }

    #[test]
    fn cut_or_foreign_output_is_an_error() {
        let text = super::super::fixture("httperf", "ok_404.txt");
        let cut: String = text.lines().take(18).map(|l| format!("{l}\n")).collect();
        let e = parse_httperf_output(&cut).expect_err("no Errors lines");
        assert!(e.contains("Errors:"), "{e}");
        assert!(parse_httperf_output("").is_err());
        let wrk = super::super::fixture("wrk", "ok_2xx.txt");
        assert!(
            parse_httperf_output(&wrk)
                .expect_err("wrk")
                .contains("not httperf output")
        );
    }

    #[test]
    fn rate_and_close_after_become_connections_per_second() {
        let s = Scenario::parse(
            "name: x\nclient:\n  tool: httperf\n  rate: 1000\n  close_after: 10\n  duration: 3s\n  path: /abc\nvariants:\n  - name: a\n",
            "s.yaml",
            &[],
        )
        .expect("valid");
        let exe = std::path::PathBuf::from("twlab");
        let target = Target {
            endpoint: crate::common::endpoint::Endpoint::new([198, 18, 0, 1].into(), 8080),
            exe: &exe,
        };
        assert_eq!(
            Httperf.argv(&s.client, &target),
            [
                "httperf",
                "--hog",
                "--server=198.18.0.1",
                "--port=8080",
                "--uri=/abc",
                "--rate=100",
                "--num-conns=300",
                "--num-calls=10",
                "--timeout=2"
            ]
        );
        // Without a rate: refused at the tool's line.
        let e = Scenario::parse(
            "name: x\nclient:\n  tool: httperf\n  close_after: 1\nvariants:\n  - name: a\n",
            "s.yaml",
            &[],
        )
        .expect_err("no rate");
        assert!(
            e.to_string().starts_with("s.yaml:3: client.tool: httperf"),
            "{e}"
        );
        // A connection count it has no notion of: refused at its line.
        let e = Scenario::parse(
            "name: x\nclient:\n  tool: httperf\n  rate: 10\n  close_after: 1\n  connections: 5\nvariants:\n  - name: a\n",
            "s.yaml",
            &[],
        )
        .expect_err("connections");
        assert!(
            e.to_string().starts_with("s.yaml:6: client.connections is not supported by client.tool: httperf; the tools that support it: builtin, wrk, ab"),
            "{e}"
        );
    }

    #[test]
    fn its_version_is_read_past_the_warning() {
        let out = "httperf: warning: open file limit > FD_SETSIZE; limiting max. # of open files to FD_SETSIZE\nhttperf: httperf-0.9.0 compiled without DEBUG without TIME_SYSCALLS.\n";
        assert_eq!(Httperf.version(out).as_deref(), Some("httperf-0.9.0"));
    }
}
