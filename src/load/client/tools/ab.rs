//! `client.tool: ab`: ApacheBench (Debian's apache2-utils) with keep-alive
//! (`-k`), the generator most people have at hand.
//!
//! `connections` is ab's concurrency (`-c`), `duration` its time limit
//! (`-t`), `timeout` its socket timeout (`-s`). ab's `-t` alone caps the
//! run at 50000 requests, so `-n` follows it with a cap well above what a
//! machine serves in the duration. `-r` keeps ab going after a socket
//! receive error (it aborts the whole run on the first one otherwise: a
//! server that resets a connection would leave no figures). ab runs on one
//! thread and cannot close after N requests or keep a rate.
//!
//! A request that times out makes ab abort the whole run with no report
//! (`apr_pollset_poll: The timeout specified has expired`): the run then
//! fails with ab's message. On SIGINT it prints its report and ends with 1.
//!
//! Its report gives completed and failed requests, non-2xx responses,
//! keep-alive requests and latency percentiles in whole milliseconds (50,
//! 75, 90, 99 and the longest). Responses are not split by status class
//! (only "non-2xx"), and connections opened are not counted.
//!
//! Parsed from real output captured against `twlab serve`; the fixtures are
//! in `tests/fixtures/ab/`.

use super::text::{after, count, first_line, number, round_to};
use super::{Key, LoadTool, Target};
use crate::common::counts::{ClientStats, ErrorCounts, Latency};
use crate::scenario::ClientSpec;

pub struct Ab;

/// Requests ab may make per second of the duration: its `-n` is the
/// duration times this (ab stops at `-n` or `-t`, whichever comes first).
const MAX_RATE_PER_SEC: u64 = 500_000;

impl LoadTool for Ab {
    fn name(&self) -> &'static str {
        "ab"
    }

    fn describe(&self) -> &'static str {
        "ApacheBench with keep-alive (`-k`), one thread; Debian's apache2-utils."
    }

    fn program(&self) -> Option<&'static str> {
        Some("ab")
    }

    fn install(&self) -> &'static str {
        "apt-get install apache2-utils"
    }

    fn version_argv(&self) -> Option<Vec<String>> {
        Some(vec!["ab".into(), "-V".into()])
    }

    /// `This is ApacheBench, Version 2.3 <$Revision$>` → `ApacheBench 2.3`.
    fn version(&self, output: &str) -> Option<String> {
        let line = output.lines().find(|l| l.contains("ApacheBench"))?;
        let v = line.split("Version ").nth(1)?.split_whitespace().next()?;
        Some(format!("ApacheBench {v}"))
    }

    fn supports(&self, key: Key) -> bool {
        matches!(
            key,
            Key::Connections | Key::Duration | Key::Timeout | Key::Path
        )
    }

    fn argv(&self, spec: &ClientSpec, target: &Target<'_>) -> Vec<String> {
        let secs = spec.duration.0.as_secs().max(1);
        let timeout = spec.timeout.0.as_secs().max(1);
        let n = (secs * MAX_RATE_PER_SEC).min(i32::MAX as u64);
        vec![
            "ab".into(),
            "-k".into(),
            "-r".into(),
            "-c".into(),
            spec.connections.to_string(),
            "-t".into(),
            secs.to_string(),
            "-n".into(),
            n.to_string(),
            "-s".into(),
            timeout.to_string(),
            target.url(&spec.path),
        ]
    }

    /// ab ends with 1 when stopped by SIGINT, after its report.
    fn exit_codes_with_report(&self) -> &'static [i32] {
        &[0, 1]
    }

    fn parse(&self, stdout: &str, _spec: &ClientSpec) -> Result<ClientStats, String> {
        parse_ab_output(stdout)
    }
}

/// Parse ab's report into [`ClientStats`] (tool `ab`).
///
/// Required: `Time taken for tests:`, `Complete requests:`, `Failed
/// requests:`, `Requests per second:` and the percentile block (50%, 90%,
/// 99%, 100%). Optional: `Non-2xx responses:` (absent: none), the failed
/// requests' split, `Total:` of the connection times (the mean).
pub fn parse_ab_output(text: &str) -> Result<ClientStats, String> {
    let mut secs = None;
    let mut complete = None;
    let mut failed = None;
    let mut rps = None;
    let mut non_2xx = 0u64;
    let mut mean_ms = None;
    let mut pct: Vec<(f64, f64)> = Vec::new();
    let mut errors = ErrorCounts::default();
    let mut split = false;
    let mut exceptions = 0u64;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = |e: String| format!("ab output line {} `{line}`: {e}", i + 1);
        if let Some(v) = after(line, "Time taken for tests:") {
            secs = Some(number(v).map_err(at)?);
        } else if let Some(v) = after(line, "Complete requests:") {
            complete = Some(count(v).map_err(at)?);
        } else if let Some(v) = after(line, "Failed requests:") {
            failed = Some(count(v).map_err(at)?);
        } else if line.starts_with("(Connect:") {
            // `(Connect: 0, Receive: 5, Length: 0, Exceptions: 0)`
            for part in line.trim_matches(['(', ')']).split(',') {
                let (kind, n) = part
                    .split_once(':')
                    .ok_or_else(|| at(format!("`{part}` is not KIND: N")))?;
                let n = count(n).map_err(at)?;
                match kind.trim() {
                    "Connect" => errors.connect += n,
                    // Not a response to ab: it counts these out of its
                    // non-2xx responses (a body cut by the server's close).
                    "Receive" | "Length" => errors.read += n,
                    // A poll error after the response was in: ab counts
                    // the response (among non-2xx here), so it is one.
                    "Exceptions" => exceptions += n,
                    other => return Err(at(format!("unknown failure kind `{other}`"))),
                }
            }
            split = true;
        } else if let Some(v) = after(line, "Non-2xx responses:") {
            non_2xx = count(v).map_err(at)?;
        } else if let Some(v) = after(line, "Requests per second:") {
            rps = Some(number(v).map_err(at)?);
        } else if let Some(rest) = line.strip_prefix("Total:") {
            // min mean [+/-sd] median max
            let cols: Vec<&str> = rest.split_whitespace().collect();
            if cols.len() >= 2 {
                mean_ms = Some(number(cols[1]).map_err(at)?);
            }
        } else if let Some((p, rest)) = line.split_once("% ")
            && let Ok(p) = p.trim().parse::<f64>()
        {
            let v = rest
                .split_whitespace()
                .next()
                .ok_or_else(|| at("no time".into()))?;
            pct.push((p, number(v).map_err(at)?));
        }
    }
    let Some(secs) = secs else {
        return Err(format!(
            "not ab output: no `Time taken for tests:` line (first line: `{}`)",
            first_line(text)
        ));
    };
    let complete = complete.ok_or("ab output has no `Complete requests:` line")?;
    let failed = failed.ok_or("ab output has no `Failed requests:` line")?;
    let rps = rps.ok_or("ab output has no `Requests per second:` line")?;
    // Failures with no split count as read failures.
    if !split {
        errors.read = failed;
    }
    let get = |p: f64| {
        pct.iter()
            .find(|(q, _)| (q - p).abs() < 1e-9)
            .map(|(_, v)| *v)
    };
    let mut notes = Vec::new();
    // ab counts a request that failed (refused, reset, cut short) among
    // the complete ones; those are errors, not responses. Measured: its
    // non-2xx count is its complete requests less these.
    let requests = complete.saturating_sub(errors.total());
    let latency = if requests == 0 {
        notes.push("ab completed no request: it has no latency figures".to_string());
        Latency::default()
    } else {
        let missing =
            || "ab output has no percentile block with 50%, 90%, 99% and 100%".to_string();
        Latency {
            mean_ms: mean_ms.or(get(50.0)).ok_or_else(missing)?,
            p50_ms: get(50.0).ok_or_else(missing)?,
            p75_ms: get(75.0),
            p90_ms: get(90.0).ok_or_else(missing)?,
            p99_ms: get(99.0).ok_or_else(missing)?,
            max_ms: get(100.0).ok_or_else(missing)?,
        }
    };
    notes.push(
        "ab reports latency in whole milliseconds and does not split responses by status class or count connections"
            .to_string(),
    );
    if exceptions > 0 {
        notes.push(format!(
            "ab counted {exceptions} of its responses as failed too (`Exceptions`: a poll error as the connection closed); they are counted here as responses, not errors"
        ));
    }
    Ok(ClientStats {
        tool: "ab".into(),
        duration_secs: secs,
        requests,
        requests_per_sec: round_to(rps, 100.0),
        responses_by_class: None,
        non_2xx_3xx: non_2xx,
        connections_opened: None,
        errors,
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
        parse_ab_output(&super::super::fixture("ab", name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn a_keep_alive_run_against_the_builtin_server() {
        let s = parsed("ok_404.txt");
        assert_eq!(s.tool, "ab");
        assert_eq!(s.duration_secs, 2.0);
        // 12001 complete, of which 100 cut short (not counted as non-2xx
        // by ab either); the 56 exceptions had their response.
        assert_eq!(s.requests, 11901);
        assert_eq!(s.errors.read, 100);
        assert_eq!(s.non_2xx_3xx, 11901);
        assert_eq!(s.requests_per_sec, 6000.26);
        assert_eq!(s.latency.mean_ms, 17.0);
        assert_eq!(
            (
                s.latency.p50_ms,
                s.latency.p75_ms,
                s.latency.p90_ms,
                s.latency.p99_ms,
                s.latency.max_ms
            ),
            (14.0, Some(20.0), 30.0, 54.0, 100.0)
        );
        assert!(
            s.notes.iter().any(|n| n.contains("56 of its responses")),
            "{:?}",
            s.notes
        );
    }

    #[test]
    fn refused_and_interrupted_runs_and_a_timeout_that_aborts() {
        let r = parsed("refused.txt");
        assert_eq!((r.requests, r.errors.read), (0, 15394));
        assert_eq!(r.latency, Latency::default());
        assert!(r.notes[0].contains("no latency"), "{:?}", r.notes);
        let i = parsed("interrupted.txt");
        assert_eq!(
            (i.requests, i.duration_secs, i.non_2xx_3xx),
            (6988, 1.495, 6988)
        );
        // A timeout makes ab abort before its report.
        let e =
            parse_ab_output(&super::super::fixture("ab", "timeouts.txt")).expect_err("no report");
        assert!(e.contains("not ab output"), "{e}");
        assert!(Ab.exit_codes_with_report().contains(&1));
    }

    #[test]
    fn a_cut_report_is_an_error() {
        let text = super::super::fixture("ab", "ok_404.txt");
        let cut: String = text.lines().take(30).map(|l| format!("{l}\n")).collect();
        assert!(
            parse_ab_output(&cut)
                .expect_err("no percentiles")
                .contains("percentile")
        );
    }

    #[test]
    fn its_argv_lifts_the_50000_request_cap() {
        let s = crate::scenario::Scenario::parse(
            "name: x\nclient: { tool: ab, connections: 100, duration: 3s }\nvariants: [{ name: a }]\n",
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
            Ab.argv(&s.client, &t),
            [
                "ab",
                "-k",
                "-r",
                "-c",
                "100",
                "-t",
                "3",
                "-n",
                "1500000",
                "-s",
                "2",
                "http://198.18.0.1:8080/abc"
            ]
        );
        assert_eq!(
            Ab.version("This is ApacheBench, Version 2.3 <$Revision$>\n")
                .as_deref(),
            Some("ApacheBench 2.3")
        );
    }
}
