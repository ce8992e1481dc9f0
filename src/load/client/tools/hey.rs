//! `client.tool: hey`: Go's hey (Debian's hey 0.1.4).
//!
//! `connections` is hey's workers (`-c`, one keep-alive connection each),
//! `duration` its `-z`, `timeout` its `-t` (whole seconds). A `rate` is
//! spread over the workers as hey's per-worker `-q` (queries per second
//! each, so the total is `rate` rounded to a multiple of `connections`),
//! and `close_after: 1` is `-disable-keepalive` (a new connection per
//! request); other `close_after` values it cannot do.
//!
//! Its report has latency percentiles (10–99%), slowest and average,
//! responses by status code and errors by message; connections opened are
//! not counted. hey prints its report on SIGINT as at the end.
//!
//! Parsed from real output captured against `twlab serve`; the fixtures are
//! in `tests/fixtures/hey/`.

use super::text::{count, first_line, number, round_to};
use super::{Key, LoadTool, Target};
use crate::common::counts::{ClientStats, Counts, ErrorCounts, Latency};
use crate::scenario::ClientSpec;

pub struct Hey;

impl LoadTool for Hey {
    fn name(&self) -> &'static str {
        "hey"
    }

    fn describe(&self) -> &'static str {
        "hey (Go): workers with one keep-alive connection each, an optional rate; Debian's hey."
    }

    fn program(&self) -> Option<&'static str> {
        Some("hey")
    }

    fn install(&self) -> &'static str {
        "apt-get install hey"
    }

    /// hey has no version flag: Debian's package database says.
    fn version_argv(&self) -> Option<Vec<String>> {
        Some(vec![
            "dpkg-query".into(),
            "-W".into(),
            "-f=hey ${Version}\\n".into(),
            "hey".into(),
        ])
    }

    fn version(&self, output: &str) -> Option<String> {
        output
            .lines()
            .find(|l| l.starts_with("hey ") && l.len() > 4)
            .map(|l| l.trim().to_string())
    }

    fn supports(&self, key: Key) -> bool {
        matches!(
            key,
            Key::Connections
                | Key::Duration
                | Key::Timeout
                | Key::Path
                | Key::Rate
                | Key::CloseAfter
        )
    }

    fn check(&self, spec: &ClientSpec) -> Result<(), String> {
        if spec.close_after > 1 {
            return Err(format!(
                "client.close_after is {}: hey can only close after every request (close_after: 1, its -disable-keepalive) or never",
                spec.close_after
            ));
        }
        Ok(())
    }

    fn argv(&self, spec: &ClientSpec, target: &Target<'_>) -> Vec<String> {
        let mut argv = vec![
            "hey".into(),
            "-z".into(),
            format!("{}s", spec.duration.0.as_secs_f64()),
            "-c".into(),
            spec.connections.to_string(),
            "-t".into(),
            spec.timeout.0.as_secs().max(1).to_string(),
        ];
        if let Some(rate) = spec.rate {
            let per_worker = rate / f64::from(spec.connections.get());
            argv.extend(["-q".into(), round_to(per_worker, 1e6).to_string()]);
        }
        if spec.close_after == 1 {
            argv.push("-disable-keepalive".into());
        }
        argv.push(target.url(&spec.path));
        argv
    }

    fn parse(&self, stdout: &str, _spec: &ClientSpec) -> Result<ClientStats, String> {
        parse_hey_output(stdout)
    }
}

/// Parse hey's report into [`ClientStats`] (tool `hey`).
///
/// Required: the `Summary:` block's `Total:` and `Requests/sec:`. With any
/// response: `Average:`, `Slowest:` and the latency distribution (50, 90,
/// 99%). Optional: the status code and error distributions.
pub fn parse_hey_output(text: &str) -> Result<ClientStats, String> {
    #[derive(PartialEq)]
    enum Block {
        None,
        Latency,
        Status,
        Errors,
    }
    let mut block = Block::None;
    let mut total = None;
    let mut rps = None;
    let mut slowest = None;
    let mut average = None;
    let mut pct: Vec<(f64, f64)> = Vec::new();
    let mut codes = Counts::new();
    let mut errors = ErrorCounts::default();
    let mut errno = Counts::new();
    let mut summary = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = |e: String| format!("hey output line {} `{line}`: {e}", i + 1);
        if line.is_empty() {
            continue;
        }
        let secs = |v: &str| -> Result<f64, String> {
            let n = v.split_whitespace().next().unwrap_or("");
            Ok(round_to(number(n)? * 1000.0, 1e6))
        };
        if !raw.starts_with(' ') && !raw.starts_with('\t') {
            block = match line {
                "Latency distribution:" => Block::Latency,
                "Status code distribution:" => Block::Status,
                "Error distribution:" => Block::Errors,
                _ => Block::None,
            };
            summary |= line == "Summary:";
            continue;
        }
        if let Some(v) = line.strip_prefix("Total:") {
            total = Some(round_to(secs(v).map_err(at)? / 1000.0, 1e6));
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = Some(number(v).map_err(at)?);
        } else if let Some(v) = line.strip_prefix("Slowest:") {
            // `NaN` without a response: then no latency is read.
            slowest = secs(v).ok();
        } else if let Some(v) = line.strip_prefix("Average:") {
            average = secs(v).ok();
        } else if block == Block::Latency {
            // `50% in 0.0035 secs`
            let Some((p, v)) = line.split_once("% in ") else {
                return Err(at("expected `P% in T secs`".into()));
            };
            pct.push((number(p).map_err(at)?, secs(v).map_err(at)?));
        } else if block == Block::Status {
            // `[404]	71008 responses`
            let (code, rest) = line
                .strip_prefix('[')
                .and_then(|l| l.split_once(']'))
                .ok_or_else(|| at("expected `[CODE] N responses`".into()))?;
            let n = count(rest.split_whitespace().next().unwrap_or("")).map_err(at)?;
            let class = format!("{}xx", code.trim().chars().next().unwrap_or('?'));
            *codes.entry(class).or_insert(0) += n;
        } else if block == Block::Errors {
            // `[2]	Get "http://…": dial tcp …: connect: connection refused`
            let (n, message) = line
                .strip_prefix('[')
                .and_then(|l| l.split_once(']'))
                .ok_or_else(|| at("expected `[N] message`".into()))?;
            let n = count(n).map_err(at)?;
            let m = message.to_ascii_lowercase();
            if m.contains("timeout") || m.contains("deadline exceeded") {
                errors.timeout += n;
            } else if m.contains("dial tcp") || m.contains("connect:") {
                errors.connect += n;
                let name = if m.contains("cannot assign requested address") {
                    "EADDRNOTAVAIL"
                } else if m.contains("connection refused") {
                    "ECONNREFUSED"
                } else {
                    "other"
                };
                *errno.entry(name.into()).or_insert(0) += n;
            } else if m.contains("write") || m.contains("broken pipe") {
                errors.write += n;
            } else {
                errors.read += n;
            }
        }
    }
    let (Some(total), true) = (total, summary) else {
        return Err(format!(
            "not hey output: no `Summary:` with `Total:` (first line: `{}`)",
            first_line(text)
        ));
    };
    rps.ok_or("hey output has no `Requests/sec:` line")?;
    let requests: u64 = codes.values().sum();
    // hey's Requests/sec counts failed requests too: responses per second.
    let rps = if total > 0.0 {
        round_to(requests as f64 / total, 100.0)
    } else {
        0.0
    };
    let get = |p: f64| {
        pct.iter()
            .find(|(q, _)| (q - p).abs() < 1e-9)
            .map(|(_, v)| *v)
    };
    let latency = if requests == 0 {
        Latency::default()
    } else {
        let missing = || "hey output has no latency distribution with 50%, 90% and 99%".to_string();
        Latency {
            mean_ms: average.ok_or("hey output has no `Average:` line")?,
            p50_ms: get(50.0).ok_or_else(missing)?,
            p75_ms: get(75.0),
            p90_ms: get(90.0).ok_or_else(missing)?,
            p99_ms: get(99.0).ok_or_else(missing)?,
            max_ms: slowest.ok_or("hey output has no `Slowest:` line")?,
        }
    };
    let ok: u64 = ["2xx", "3xx"].iter().filter_map(|k| codes.get(*k)).sum();
    let mut notes = vec!["hey does not count the connections it opens".to_string()];
    if requests == 0 {
        notes.push("hey got no response: it has no latency figures".into());
    }
    Ok(ClientStats {
        tool: "hey".into(),
        duration_secs: total,
        requests,
        requests_per_sec: rps,
        responses_by_class: Some(codes),
        non_2xx_3xx: requests - ok,
        connections_opened: None,
        errors: ErrorCounts {
            connect_by_errno: Some(errno),
            ..errors
        },
        latency,
        cpu_secs: None,
        notes,
        schedule: None,
        not_measured: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(name: &str) -> ClientStats {
        parse_hey_output(&super::super::fixture("hey", name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn a_run_against_the_builtin_server() {
        let s = parsed("ok_404.txt");
        assert_eq!(s.tool, "hey");
        assert_eq!((s.requests, s.duration_secs), (15748, 2.025));
        assert_eq!(s.requests_per_sec, 7776.79);
        assert_eq!(
            s.responses_by_class.as_ref().and_then(|c| c.get("4xx")),
            Some(&15748)
        );
        assert_eq!(s.non_2xx_3xx, 15748);
        assert_eq!(
            (
                s.latency.mean_ms,
                s.latency.p50_ms,
                s.latency.p75_ms,
                s.latency.p90_ms,
                s.latency.p99_ms,
                s.latency.max_ms
            ),
            (12.7, 12.0, Some(16.1), 20.7, 38.4, 63.1)
        );
        assert_eq!(s.errors.total(), 0);
    }

    #[test]
    fn refused_timed_out_and_interrupted_runs() {
        let r = parsed("refused.txt");
        assert_eq!(
            (r.requests, r.errors.connect, r.requests_per_sec),
            (0, 8605, 0.0)
        );
        assert_eq!(
            r.errors
                .connect_by_errno
                .as_ref()
                .and_then(|e| e.get("ECONNREFUSED")),
            Some(&8605)
        );
        assert_eq!(r.latency, Latency::default());
        let t = parsed("timeouts.txt");
        assert_eq!((t.requests, t.errors.timeout), (0, 10));
        let i = parsed("interrupted.txt");
        assert_eq!((i.requests, i.duration_secs), (10301, 1.5071));
    }

    #[test]
    fn cut_or_foreign_output_is_an_error() {
        let text = super::super::fixture("hey", "ok_404.txt");
        let cut: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
        assert!(parse_hey_output(&cut).is_err());
        assert!(parse_hey_output(&super::super::fixture("wrk", "ok_2xx.txt")).is_err());
        assert!(parse_hey_output("").is_err());
    }

    #[test]
    fn a_rate_is_spread_over_the_workers_and_close_after_is_one_or_none() {
        let s = crate::scenario::Scenario::parse(
            "name: x\nclient: { tool: hey, connections: 10, rate: 500, close_after: 1, duration: 3s }\nvariants: [{ name: a }]\n",
            "s.yaml",
            &[],
        )
        .expect("valid");
        let exe = std::path::PathBuf::from("twlab");
        let t = Target {
            endpoint: crate::common::endpoint::Endpoint::new([198, 18, 0, 1].into(), 8080),
            exe: &exe,
        };
        assert_eq!(
            Hey.argv(&s.client, &t),
            [
                "hey",
                "-z",
                "3s",
                "-c",
                "10",
                "-t",
                "2",
                "-q",
                "50",
                "-disable-keepalive",
                "http://198.18.0.1:8080/abc"
            ]
        );
        let e = crate::scenario::Scenario::parse(
            "name: x\nclient:\n  tool: hey\n  close_after: 5\nvariants: [{ name: a }]\n",
            "s.yaml",
            &[],
        )
        .expect_err("close_after 5");
        assert!(
            e.to_string()
                .starts_with("s.yaml:4: client.close_after is 5: hey"),
            "{e}"
        );
    }
}
