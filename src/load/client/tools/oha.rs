//! `client.tool: oha`: the Rust load generator from crates.io (`cargo
//! install oha --locked`), run without its TUI and read from its JSON
//! result (`--output-format json`), the one tool here with a
//! machine-readable report.
//!
//! `connections` is its `-c`, `duration` its `-z`, `timeout` its `-t`, a
//! `rate` its `-q` (queries per second in all), `close_after: 1` its
//! `--disable-keepalive`. It runs on a tokio runtime of its own choosing,
//! so `threads` is not honoured.
//!
//! What it reports: latency percentiles (p50–p99.99, seconds), slowest,
//! average, responses by status code and errors by message. At the end of
//! `-z` it cuts the requests in flight and counts them as `aborted due to
//! deadline`: those are the duration's end, not errors, and are left out
//! (a note says how many). Connections opened are not counted.
//!
//! Parsed from real output captured against `twlab serve`; the fixtures are
//! in `tests/fixtures/oha/`.

use super::text::{first_line, round_to};
use super::{Key, LoadTool, Target};
use crate::common::counts::{ClientStats, Counts, ErrorCounts, Latency};
use crate::scenario::ClientSpec;
use serde_json::Value;

pub struct Oha;

impl LoadTool for Oha {
    fn name(&self) -> &'static str {
        "oha"
    }

    fn describe(&self) -> &'static str {
        "oha (Rust, crates.io), read from its JSON result; an optional rate."
    }

    fn program(&self) -> Option<&'static str> {
        Some("oha")
    }

    fn install(&self) -> &'static str {
        "cargo install oha --locked"
    }

    fn version_argv(&self) -> Option<Vec<String>> {
        Some(vec!["oha".into(), "--version".into()])
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
                "client.close_after is {}: oha can only close after every request (close_after: 1, its --disable-keepalive) or never",
                spec.close_after
            ));
        }
        Ok(())
    }

    fn argv(&self, spec: &ClientSpec, target: &Target<'_>) -> Vec<String> {
        let mut argv = vec![
            "oha".into(),
            "--no-tui".into(),
            "--output-format".into(),
            "json".into(),
            "-z".into(),
            format!("{}s", spec.duration.0.as_secs_f64()),
            "-c".into(),
            spec.connections.to_string(),
            "-t".into(),
            format!("{}s", spec.timeout.0.as_secs_f64()),
        ];
        if let Some(rate) = spec.rate {
            argv.extend(["-q".into(), rate.to_string()]);
        }
        if spec.close_after == 1 {
            argv.push("--disable-keepalive".into());
        }
        argv.push(target.url(&spec.path));
        argv
    }

    fn parse(&self, stdout: &str, _spec: &ClientSpec) -> Result<ClientStats, String> {
        parse_oha_output(stdout)
    }
}

/// The error message of requests oha cuts at the end of `-z`.
const DEADLINE: &str = "aborted due to deadline";

/// Parse oha's JSON result into [`ClientStats`] (tool `oha`).
///
/// Required: `summary.total` and `summary.requestsPerSec`, and with any
/// response `summary.average`, `summary.slowest` and `latencyPercentiles`
/// p50, p90 and p99. Optional: the status code and error distributions.
pub fn parse_oha_output(text: &str) -> Result<ClientStats, String> {
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| {
        format!(
            "not oha's JSON result ({e}; first line: `{}`)",
            first_line(text).chars().take(200).collect::<String>()
        )
    })?;
    let num = |path: &[&str]| -> Option<f64> {
        let mut cur = &v;
        for p in path {
            cur = cur.get(p)?;
        }
        cur.as_f64().filter(|x| x.is_finite())
    };
    let need = |path: &[&str]| {
        num(path).ok_or_else(|| format!("oha's result has no number at `{}`", path.join(".")))
    };
    let total = need(&["summary", "total"])?;
    // Its requestsPerSec counts failed requests too: responses per second
    // are worked out below.
    need(&["summary", "requestsPerSec"])?;
    let mut codes = Counts::new();
    if let Some(map) = v.get("statusCodeDistribution").and_then(Value::as_object) {
        for (code, n) in map {
            let n = n
                .as_u64()
                .ok_or_else(|| format!("oha's status code `{code}` has no count"))?;
            let class = format!("{}xx", code.chars().next().unwrap_or('?'));
            *codes.entry(class).or_insert(0) += n;
        }
    }
    let mut errors = ErrorCounts::default();
    let mut errno = Counts::new();
    let mut cut = 0u64;
    if let Some(map) = v.get("errorDistribution").and_then(Value::as_object) {
        for (message, n) in map {
            let n = n
                .as_u64()
                .ok_or_else(|| format!("oha's error `{message}` has no count"))?;
            let m = message.to_ascii_lowercase();
            if m == DEADLINE {
                cut += n;
            } else if m.contains("timeout") || m.contains("timed out") {
                errors.timeout += n;
            } else if m.contains("connect") {
                errors.connect += n;
                let name = if m.contains("cannot assign requested address") {
                    "EADDRNOTAVAIL"
                } else if m.contains("refused") {
                    "ECONNREFUSED"
                } else {
                    "other"
                };
                *errno.entry(name.into()).or_insert(0) += n;
            } else {
                errors.read += n;
            }
        }
    }
    let requests: u64 = codes.values().sum();
    let rps = if total > 0.0 {
        requests as f64 / total
    } else {
        0.0
    };
    let ms = |path: &[&str]| need(path).map(|s| round_to(s * 1000.0, 1e6));
    let latency = if requests == 0 {
        Latency::default()
    } else {
        Latency {
            mean_ms: ms(&["summary", "average"])?,
            p50_ms: ms(&["latencyPercentiles", "p50"])?,
            p75_ms: num(&["latencyPercentiles", "p75"]).map(|s| round_to(s * 1000.0, 1e6)),
            p90_ms: ms(&["latencyPercentiles", "p90"])?,
            p99_ms: ms(&["latencyPercentiles", "p99"])?,
            max_ms: ms(&["summary", "slowest"])?,
        }
    };
    let ok: u64 = ["2xx", "3xx"].iter().filter_map(|k| codes.get(*k)).sum();
    let mut notes = vec!["oha does not count the connections it opens".to_string()];
    if cut > 0 {
        notes.push(format!(
            "oha cut {cut} requests in flight at the end of its duration (`{DEADLINE}`): not counted as errors"
        ));
    }
    Ok(ClientStats {
        tool: "oha".into(),
        duration_secs: round_to(total, 1e6),
        requests,
        requests_per_sec: round_to(rps, 100.0),
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
        parse_oha_output(&super::super::fixture("oha", name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn a_run_against_the_builtin_server() {
        let s = parsed("ok_404.json");
        assert_eq!(s.tool, "oha");
        assert_eq!((s.requests, s.duration_secs), (12093, 2.004643));
        assert_eq!(s.requests_per_sec, 6032.49);
        assert_eq!(s.non_2xx_3xx, 12093);
        assert_eq!(
            (
                s.latency.mean_ms,
                s.latency.p50_ms,
                s.latency.p90_ms,
                s.latency.p99_ms,
                s.latency.max_ms
            ),
            (16.411417, 12.80059, 31.138522, 94.097655, 122.368295)
        );
        // The requests cut at the deadline are no errors.
        assert_eq!(s.errors.total(), 0);
        assert!(
            s.notes.iter().any(|n| n.contains("cut 100 requests")),
            "{:?}",
            s.notes
        );
    }

    #[test]
    fn refused_timed_out_and_interrupted_runs() {
        let r = parsed("refused.json");
        assert_eq!(
            (r.requests, r.errors.connect, r.requests_per_sec),
            (0, 26536, 0.0)
        );
        assert_eq!(
            r.errors
                .connect_by_errno
                .as_ref()
                .and_then(|e| e.get("ECONNREFUSED")),
            Some(&26536)
        );
        assert_eq!(r.latency, Latency::default());
        let t = parsed("timeouts.json");
        assert_eq!((t.requests, t.errors.timeout, t.errors.total()), (0, 5, 5));
        let i = parsed("interrupted.json");
        assert_eq!(i.requests, 9874);
    }

    #[test]
    fn cut_or_foreign_output_is_an_error() {
        let text = super::super::fixture("oha", "ok_404.json");
        assert!(parse_oha_output(&text[..text.len() / 2]).is_err());
        assert!(
            parse_oha_output("{}")
                .expect_err("empty")
                .contains("summary.total")
        );
        assert!(parse_oha_output("").is_err());
    }
}
