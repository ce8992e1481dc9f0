//! wrk as the load client: its command line and a parser for its text output.
//!
//! The seed experiment (Tomcat under wrk, sysctls compared) was run with wrk,
//! so twlab can run the very same tool to reproduce it faithfully. wrk has
//! no machine-readable output (short of a Lua script, which would have to be
//! installed next to it on the client host), so we parse the text it prints
//! when run with `--latency` into the same [`ClientStats`] the builtin client
//! produces; the report then compares variants without caring which tool ran.
//!
//! What wrk does not tell is left `None` rather than made up: responses by
//! status class, connections opened, connect errors by errno.
//!
//! One behaviour matters for TIME_WAIT experiments and is written into the
//! stats' notes: when `connect()` fails at once (as with `EADDRNOTAVAIL` when
//! the client runs out of local ports), wrk counts a connect error and gives
//! that connection slot up for the rest of the run. Under port exhaustion the
//! run goes on with fewer live connections than asked, so its throughput is
//! not comparable with twlab's builtin client, which retries.
//!
//! The parser was written against real wrk 4.1.0 output captured on
//! loopback; the fixtures are in `tests/fixtures/wrk/` (see its README).

use super::{Key, LoadTool, Target};
use crate::common::counts::{ClientStats, ErrorCounts, Latency};
use crate::scenario::{ClientSpec, ClientVia, DEFAULT_CLIENT_IMAGE};
use std::time::Duration;

/// `client.tool: wrk`.
pub struct Wrk;

impl LoadTool for Wrk {
    fn name(&self) -> &'static str {
        "wrk"
    }

    fn describe(&self) -> &'static str {
        "wrk, the seed's generator (closed loop, keep-alive); Debian's wrk."
    }

    fn program(&self) -> Option<&'static str> {
        Some("wrk")
    }

    fn install(&self) -> &'static str {
        "apt-get install wrk"
    }

    fn version_argv(&self) -> Option<Vec<String>> {
        Some(vec!["wrk".into(), "--version".into()])
    }

    /// `wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer` → up
    /// to the copyright.
    fn version(&self, output: &str) -> Option<String> {
        let line = output.lines().find(|l| l.starts_with("wrk "))?;
        Some(
            line.split(" Copyright")
                .next()
                .unwrap_or(line)
                .trim()
                .to_string(),
        )
    }

    fn supports(&self, key: Key) -> bool {
        matches!(
            key,
            Key::Connections | Key::Threads | Key::Duration | Key::Timeout | Key::Path
        )
    }

    fn argv(&self, spec: &ClientSpec, target: &Target<'_>) -> Vec<String> {
        wrk_argv(
            &target.url(&spec.path),
            spec.connections.get(),
            spec.threads.get(),
            spec.duration.0,
            spec.timeout.0,
        )
    }

    fn parse(&self, stdout: &str, _spec: &ClientSpec) -> Result<ClientStats, String> {
        parse_wrk_output(stdout)
    }

    /// twlab/wrk:4.1 (docker/wrk/build.sh), its entrypoint wrk.
    fn image(&self, via: ClientVia) -> Option<&'static str> {
        matches!(via, ClientVia::Docker | ClientVia::Swarm).then_some(DEFAULT_CLIENT_IMAGE)
    }
}

/// argv to run wrk: `["wrk", "--latency", "-c", N, "-t", T, "-d", "<secs>s",
/// "--timeout", "<secs>s", URL]`.
///
/// wrk reads `-d` and `--timeout` as whole seconds (it truncates `1.5s` and
/// refuses `500ms`), so both are rounded up to whole seconds, at least 1.
pub fn wrk_argv(
    url: &str,
    connections: u32,
    threads: u32,
    duration: Duration,
    timeout: Duration,
) -> Vec<String> {
    vec![
        "wrk".to_string(),
        "--latency".to_string(),
        "-c".to_string(),
        connections.to_string(),
        "-t".to_string(),
        threads.to_string(),
        "-d".to_string(),
        format!("{}s", whole_secs(duration)),
        "--timeout".to_string(),
        format!("{}s", whole_secs(timeout)),
        url.to_string(),
    ]
}

/// Seconds rounded up, at least one.
fn whole_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// Parse wrk's stdout (run with `--latency`) into [`ClientStats`] (tool `wrk`).
///
/// Required: the `N requests in T, X read` line, `Requests/sec:`, the
/// `Latency` line of the thread stats and the `Latency Distribution` block
/// (50%, 90%, 99%; 75% when printed). Optional: `Socket errors:` (absent
/// means no errors) and `Non-2xx or 3xx responses:` (absent means none).
pub fn parse_wrk_output(text: &str) -> Result<ClientStats, String> {
    if text.trim().is_empty() {
        return Err(
            "wrk printed nothing on stdout (it reports a failed first connect on stderr)".into(),
        );
    }
    let mut requests_line: Option<(u64, f64)> = None;
    let mut requests_per_sec: Option<f64> = None;
    let mut thread_latency: Option<(f64, f64)> = None;
    let mut distribution: Vec<(f64, f64)> = Vec::new();
    let mut in_distribution = false;
    let mut errors = ErrorCounts::default();
    let mut non_2xx_3xx = 0u64;
    let mut connections: Option<u64> = None;

    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let lineno = i + 1;
        let at = |e: String| format!("wrk output line {lineno} `{line}`: {e}");

        if in_distribution {
            if let Some((pct, value)) = distribution_line(line) {
                distribution.push((pct, time_ms(value).map_err(at)?));
                continue;
            }
            in_distribution = false;
        }

        if line.starts_with("Latency Distribution") {
            in_distribution = true;
        } else if let Some(rest) = line.strip_prefix("Latency ") {
            // The thread-stats line: Avg, Stdev, Max, +/- Stdev.
            let cols: Vec<&str> = rest.split_whitespace().collect();
            if cols.len() < 3 {
                return Err(at("expected Avg, Stdev and Max".into()));
            }
            thread_latency = Some((time_ms(cols[0]).map_err(at)?, time_ms(cols[2]).map_err(at)?));
        } else if let Some(rest) = line.strip_prefix("Requests/sec:") {
            requests_per_sec = Some(number(rest.trim()).map_err(at)?);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors = socket_errors(rest).map_err(at)?;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx_3xx = count(rest.trim()).map_err(at)?;
        } else if let Some(parsed) = requests_in(line) {
            requests_line = Some(parsed.map_err(at)?);
        } else if let Some(n) = header_connections(line) {
            connections = Some(n);
        }
    }

    let first_line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let Some((requests, duration_secs)) = requests_line else {
        return Err(format!(
            "not wrk output: no `N requests in T, X read` line (first line: `{first_line}`)"
        ));
    };
    let requests_per_sec = requests_per_sec.ok_or("wrk output has no `Requests/sec:` line")?;
    let (mean_ms, max_ms) =
        thread_latency.ok_or("wrk output has no `Latency` line in its thread stats")?;
    let pct = |p: f64| {
        distribution
            .iter()
            .find(|(q, _)| (q - p).abs() < 1e-9)
            .map(|(_, v)| *v)
    };
    let missing = || {
        "wrk output has no Latency Distribution with 50%, 90% and 99%: was wrk run with --latency?"
            .to_string()
    };
    let latency = Latency {
        mean_ms,
        p50_ms: pct(50.0).ok_or_else(missing)?,
        p75_ms: pct(75.0),
        p90_ms: pct(90.0).ok_or_else(missing)?,
        p99_ms: pct(99.0).ok_or_else(missing)?,
        max_ms,
    };

    let mut notes = Vec::new();
    if errors.connect > 0 {
        let lost = match connections {
            Some(c) => format!("up to {} of its {c} connections", errors.connect.min(c)),
            None => format!("up to {} connections", errors.connect),
        };
        notes.push(format!(
            "wrk reported {} connect errors. wrk drops a connection slot for good when \
             connect() fails, so under local port exhaustion (EADDRNOTAVAIL) the run stalls \
             with fewer live connections ({lost} lost) — unlike twlab's builtin client, which \
             retries; its throughput is not comparable with a run without connect errors.",
            errors.connect
        ));
    }

    Ok(ClientStats {
        tool: "wrk".to_string(),
        duration_secs,
        requests,
        requests_per_sec,
        responses_by_class: None,
        non_2xx_3xx,
        connections_opened: None,
        errors,
        latency,
        // wrk does not say; twlab measures it from /proc while wrk runs.
        cpu_secs: None,
        notes,
        schedule: None,
        not_measured: Vec::new(),
    })
}

/// `3895 requests in 3.10s, 722.88KB read` → (requests, seconds).
fn requests_in(line: &str) -> Option<Result<(u64, f64), String>> {
    let (n, rest) = line.split_once(" requests in ")?;
    let time = rest.split(',').next().unwrap_or("").trim();
    Some(count(n.trim()).and_then(|n| Ok((n, time_secs(time)?))))
}

/// `2 threads and 8 connections` → 8.
fn header_connections(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once(" threads and ")?;
    rest.strip_suffix(" connections")?.trim().parse().ok()
}

/// `50%    2.92ms` → (50.0, "2.92ms").
fn distribution_line(line: &str) -> Option<(f64, &str)> {
    let mut cols = line.split_whitespace();
    let pct = cols.next()?.strip_suffix('%')?.parse().ok()?;
    let value = cols.next()?;
    cols.next().is_none().then_some((pct, value))
}

/// `connect 0, read 5, write 50690, timeout 0`.
fn socket_errors(rest: &str) -> Result<ErrorCounts, String> {
    let mut errors = ErrorCounts::default();
    for part in rest.split(',') {
        let mut kv = part.split_whitespace();
        let (Some(name), Some(value), None) = (kv.next(), kv.next(), kv.next()) else {
            return Err(format!("cannot read socket errors `{}`", part.trim()));
        };
        let n = count(value)?;
        match name {
            "connect" => errors.connect = n,
            "read" => errors.read = n,
            "write" => errors.write = n,
            "timeout" => errors.timeout = n,
            other => return Err(format!("unknown socket error kind `{other}`")),
        }
    }
    Ok(errors)
}

fn count(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("`{s}` is not a count"))
}

fn number(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a number")),
    }
}

/// A wrk time (`725.84us`, `3.03ms`, `1.10s`, `1.50m`, `2.00h`) in
/// milliseconds, rounded to the nanosecond so decimal figures stay exact.
fn time_ms(s: &str) -> Result<f64, String> {
    let (value, unit_ms) = split_time(s)?;
    Ok(round_to(value * unit_ms, 1e6))
}

/// A wrk time in seconds, rounded to the microsecond.
fn time_secs(s: &str) -> Result<f64, String> {
    let (value, unit_ms) = split_time(s)?;
    Ok(round_to(value * unit_ms / 1000.0, 1e6))
}

/// The number and the size of its unit in milliseconds.
fn split_time(s: &str) -> Result<(f64, f64), String> {
    // Longest suffixes first: `ms` and `us` also end in `s`.
    const UNITS: [(&str, f64); 5] = [
        ("us", 0.001),
        ("ms", 1.0),
        ("s", 1000.0),
        ("m", 60_000.0),
        ("h", 3_600_000.0),
    ];
    for (unit, ms) in UNITS {
        if let Some(n) = s.strip_suffix(unit) {
            return Ok((number(n)?, ms));
        }
    }
    Err(format!("`{s}` is not a wrk time (us, ms, s, m or h)"))
}

fn round_to(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> ClientStats {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wrk")
            .join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        parse_wrk_output(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn argv_has_whole_seconds_and_latency() {
        let argv = wrk_argv(
            "http://10.0.0.1:8080/abc",
            100,
            2,
            Duration::from_secs(90),
            Duration::from_millis(1500),
        );
        assert_eq!(
            argv,
            [
                "wrk",
                "--latency",
                "-c",
                "100",
                "-t",
                "2",
                "-d",
                "90s",
                "--timeout",
                "2s",
                "http://10.0.0.1:8080/abc"
            ]
        );
        let short = wrk_argv("http://x/", 1, 1, Duration::from_millis(1), Duration::ZERO);
        assert_eq!(short[7], "1s");
        assert_eq!(short[9], "1s");
    }

    #[test]
    fn parses_a_2xx_run() {
        let s = fixture("ok_2xx.txt");
        assert_eq!(s.tool, "wrk");
        assert_eq!(s.requests, 3895);
        assert_eq!(s.duration_secs, 3.1);
        assert_eq!(s.requests_per_sec, 1256.64);
        assert_eq!(s.latency.mean_ms, 3.03);
        assert_eq!(s.latency.max_ms, 9.99);
        assert_eq!(s.latency.p50_ms, 2.92);
        assert_eq!(s.latency.p75_ms, Some(3.63));
        assert_eq!(s.latency.p90_ms, 4.41);
        assert_eq!(s.latency.p99_ms, 6.22);
        assert_eq!(s.errors, ErrorCounts::default());
        assert_eq!(s.non_2xx_3xx, 0);
        assert_eq!(s.responses_by_class, None);
        assert_eq!(s.connections_opened, None);
        assert!(s.notes.is_empty());
    }

    #[test]
    fn parses_non_2xx_responses() {
        let s = fixture("non_2xx_404.txt");
        assert_eq!(s.requests, 4802);
        assert_eq!(s.duration_secs, 3.0);
        assert_eq!(s.requests_per_sec, 1599.72);
        assert_eq!(s.non_2xx_3xx, 4802);
        assert_eq!(s.latency.mean_ms, 2.42);
        assert_eq!(s.latency.max_ms, 9.59);
        assert_eq!(s.latency.p50_ms, 2.31);
        assert_eq!(s.latency.p75_ms, Some(2.77));
        assert_eq!(s.latency.p90_ms, 3.31);
        assert_eq!(s.latency.p99_ms, 4.71);
        assert_eq!(s.errors.total(), 0);
    }

    #[test]
    fn parses_connect_errors_and_notes_the_lost_slots() {
        let s = fixture("connect_eaddrnotavail.txt");
        assert_eq!(s.requests, 204);
        assert_eq!(s.duration_secs, 3.01);
        assert_eq!(s.requests_per_sec, 67.88);
        assert_eq!(s.latency.mean_ms, 43.55);
        assert_eq!(s.latency.max_ms, 48.72);
        assert_eq!(s.latency.p50_ms, 43.96);
        assert_eq!(s.latency.p75_ms, Some(44.01));
        assert_eq!(s.latency.p90_ms, 44.06);
        assert_eq!(s.latency.p99_ms, 48.65);
        assert_eq!(
            s.errors,
            ErrorCounts {
                connect: 5,
                connect_by_errno: None,
                read: 0,
                write: 0,
                timeout: 0
            }
        );
        assert_eq!(s.notes.len(), 1);
        assert!(s.notes[0].contains("5 connect errors"), "{}", s.notes[0]);
        assert!(
            s.notes[0].contains("up to 5 of its 8 connections"),
            "{}",
            s.notes[0]
        );
        assert!(s.notes[0].contains("EADDRNOTAVAIL"), "{}", s.notes[0]);
    }

    #[test]
    fn parses_read_and_write_errors() {
        let s = fixture("server_killed.txt");
        assert_eq!(s.requests, 1768);
        assert_eq!(s.requests_per_sec, 588.57);
        assert_eq!(s.latency.max_ms, 19.71);
        assert_eq!(s.latency.p99_ms, 7.28);
        assert_eq!(
            (
                s.errors.connect,
                s.errors.read,
                s.errors.write,
                s.errors.timeout
            ),
            (0, 5, 50690, 0)
        );
        assert!(s.notes.is_empty());
    }

    #[test]
    fn parses_timeouts() {
        let s = fixture("timeouts.txt");
        assert_eq!(s.requests, 217);
        assert_eq!(s.duration_secs, 4.01);
        assert_eq!(s.requests_per_sec, 54.12);
        assert_eq!(s.latency.mean_ms, 3.36);
        assert_eq!(s.latency.max_ms, 14.42);
        assert_eq!(s.latency.p50_ms, 3.46);
        assert_eq!(s.latency.p75_ms, Some(4.01));
        assert_eq!(s.latency.p90_ms, 7.78);
        assert_eq!(s.latency.p99_ms, 11.02);
        assert_eq!(s.errors.timeout, 8);
        assert_eq!(s.errors.total(), 8);
    }

    #[test]
    fn parses_latencies_in_seconds() {
        let s = fixture("slow_seconds.txt");
        assert_eq!(s.requests, 12);
        assert_eq!(s.duration_secs, 4.0);
        assert_eq!(s.requests_per_sec, 3.0);
        assert_eq!(s.latency.mean_ms, 1110.0);
        assert_eq!(s.latency.max_ms, 1120.0);
        assert_eq!(s.latency.p50_ms, 1100.0);
        assert_eq!(s.latency.p75_ms, Some(1110.0));
        assert_eq!(s.latency.p90_ms, 1110.0);
        assert_eq!(s.latency.p99_ms, 1120.0);
    }

    #[test]
    fn reads_every_wrk_time_unit() {
        assert_eq!(time_ms("725.84us"), Ok(0.72584));
        assert_eq!(time_ms("3.03ms"), Ok(3.03));
        assert_eq!(time_ms("1.10s"), Ok(1100.0));
        assert_eq!(time_ms("1.50m"), Ok(90_000.0));
        assert_eq!(time_ms("2.00h"), Ok(7_200_000.0));
        assert_eq!(time_secs("1.50m"), Ok(90.0));
        assert!(time_ms("3.03").is_err());
        assert!(time_ms("fast").is_err());
    }

    #[test]
    fn refuses_what_is_not_wrk_output() {
        let err = parse_wrk_output("").unwrap_err();
        assert!(err.contains("nothing"), "{err}");
        let err = parse_wrk_output("<html>502 Bad Gateway</html>\n").unwrap_err();
        assert!(err.contains("not wrk output"), "{err}");
        assert!(err.contains("502 Bad Gateway"), "{err}");
    }

    #[test]
    fn refuses_truncated_or_mangled_output() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wrk/ok_2xx.txt"),
        )
        .unwrap_or_default();
        let without_distribution: String = text
            .lines()
            .filter(|l| {
                !l.trim_start()
                    .starts_with(|c: char| c.is_ascii_digit() && l.contains('%'))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let err = parse_wrk_output(&without_distribution).unwrap_err();
        assert!(err.contains("--latency"), "{err}");
        let mangled = text.replace("Requests/sec:   1256.64", "Requests/sec:   lots");
        let err = parse_wrk_output(&mangled).unwrap_err();
        assert!(err.contains("`lots` is not a number"), "{err}");
    }
}
