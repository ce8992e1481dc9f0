//! `client.tool: h2load`: nghttp2's load generator (Debian's
//! nghttp2-client) over HTTP/1.1 (`--h1`), so it loads the same server the
//! same way as the others.
//!
//! `connections` is its clients (`-c`), `threads` its `-t` (at most the
//! clients), `duration` its timing-based `-D` (whole seconds), `timeout`
//! its `-N` (connection inactivity: how long it waits for the server; not
//! `-T`, which closes a connection after that long whatever it does). It cannot keep a rate of requests or
//! close after N requests.
//!
//! It has no graceful stop (SIGINT leaves it hung past its duration), so
//! an early stop ends it with SIGTERM and it reports nothing. It does not
//! count failed connects (a refused server shows as 0 requests).
//!
//! Its report gives requests done, succeeded (2xx/3xx) and failed, status
//! classes, errored and timed-out requests, and per request minimum,
//! maximum and mean times but no percentiles: those stay 0 and a note says
//! they are not measured.
//!
//! Parsed from real output captured against `twlab serve`; the fixtures are
//! in `tests/fixtures/h2load/`.

use super::text::{count, first_line, number, round_to};
use super::{Key, LoadTool, Target};
use crate::common::counts::{ClientStats, Counts, ErrorCounts, Latency};
use crate::scenario::ClientSpec;
use nix::sys::signal::Signal;

pub struct H2load;

impl LoadTool for H2load {
    fn name(&self) -> &'static str {
        "h2load"
    }

    fn describe(&self) -> &'static str {
        "h2load over HTTP/1.1 (`--h1`), keep-alive clients on threads; Debian's nghttp2-client."
    }

    fn program(&self) -> Option<&'static str> {
        Some("h2load")
    }

    fn install(&self) -> &'static str {
        "apt-get install nghttp2-client"
    }

    fn version_argv(&self) -> Option<Vec<String>> {
        Some(vec!["h2load".into(), "--version".into()])
    }

    fn supports(&self, key: Key) -> bool {
        matches!(
            key,
            Key::Connections | Key::Threads | Key::Duration | Key::Timeout | Key::Path
        )
    }

    fn argv(&self, spec: &ClientSpec, target: &Target<'_>) -> Vec<String> {
        vec![
            "h2load".into(),
            "--h1".into(),
            "-c".into(),
            spec.connections.to_string(),
            "-t".into(),
            spec.threads.to_string(),
            "-D".into(),
            spec.duration.0.as_secs().max(1).to_string(),
            "-N".into(),
            spec.timeout.0.as_secs().max(1).to_string(),
            target.url(&spec.path),
        ]
    }

    /// h2load has no graceful stop: on SIGINT it hangs past its duration
    /// (seen with 1.52.0), so it is ended, and reports nothing.
    fn stop_signal(&self) -> Signal {
        Signal::SIGTERM
    }

    fn parse(&self, stdout: &str, _spec: &ClientSpec) -> Result<ClientStats, String> {
        parse_h2load_output(stdout)
    }
}

/// Parse h2load's report into [`ClientStats`] (tool `h2load`).
///
/// Required: `finished in T, R req/s, …`, the `requests:` and `status
/// codes:` lines. With any request done: `time for request:` (min, max,
/// mean).
pub fn parse_h2load_output(text: &str) -> Result<ClientStats, String> {
    let mut finished: Option<(f64, f64)> = None;
    let mut requests: Option<Vec<(String, u64)>> = None;
    let mut classes: Option<Counts> = None;
    let mut times: Option<(f64, f64)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = |e: String| format!("h2load output line {} `{line}`: {e}", i + 1);
        if let Some(rest) = line.strip_prefix("finished in ") {
            let mut parts = rest.split(',');
            let t = parts.next().unwrap_or("").trim();
            let r = parts.next().unwrap_or("").trim();
            let secs = time_ms(t).map_err(at)? / 1000.0;
            let rps = number(r.strip_suffix(" req/s").unwrap_or(r)).map_err(at)?;
            finished = Some((round_to(secs, 1e6), rps));
        } else if let Some(rest) = line.strip_prefix("requests:") {
            // `37035 total, 37135 started, 37035 done, 0 succeeded, …`
            let mut v = Vec::new();
            for part in rest.split(',') {
                let mut w = part.split_whitespace();
                let (Some(n), Some(name)) = (w.next(), w.next()) else {
                    return Err(at(format!("`{part}` is not `N name`")));
                };
                v.push((name.to_string(), count(n).map_err(at)?));
            }
            requests = Some(v);
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            let mut c = Counts::new();
            for part in rest.split(',') {
                let mut w = part.split_whitespace();
                let (Some(n), Some(class)) = (w.next(), w.next()) else {
                    return Err(at(format!("`{part}` is not `N class`")));
                };
                c.insert(class.to_string(), count(n).map_err(at)?);
            }
            classes = Some(c);
        } else if let Some(rest) = line.strip_prefix("time for request:") {
            // min max mean sd +/-sd
            let cols: Vec<&str> = rest.split_whitespace().collect();
            if cols.len() < 3 {
                return Err(at("expected min, max and mean".into()));
            }
            times = Some((time_ms(cols[1]).map_err(at)?, time_ms(cols[2]).map_err(at)?));
        }
    }
    let Some((secs, rps)) = finished else {
        return Err(format!(
            "not h2load output: no `finished in` line (first line: `{}`)",
            first_line(text)
        ));
    };
    let requests = requests.ok_or("h2load output has no `requests:` line")?;
    let classes = classes.ok_or("h2load output has no `status codes:` line")?;
    let get = |k: &str| {
        requests
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("h2load's `requests:` line has no `{k}`"))
    };
    let done = get("done")?;
    let started = get("started")?;
    let errored = get("errored")?;
    let timeout = get("timeout")?;
    let responses: u64 = classes.values().sum();
    let ok: u64 = ["2xx", "3xx"].iter().filter_map(|k| classes.get(*k)).sum();
    let latency = match times {
        Some((max_ms, mean_ms)) => Latency {
            mean_ms,
            max_ms,
            ..Default::default()
        },
        None if done == 0 => Latency::default(),
        None => return Err("h2load output has no `time for request:` line".into()),
    };
    Ok(ClientStats {
        tool: "h2load".into(),
        duration_secs: secs,
        requests: responses,
        requests_per_sec: round_to(rps, 100.0),
        responses_by_class: Some(classes),
        non_2xx_3xx: responses - ok,
        connections_opened: None,
        errors: ErrorCounts {
            connect: 0,
            connect_by_errno: None,
            read: errored.saturating_sub(timeout),
            write: 0,
            timeout,
        },
        latency,
        cpu_secs: None,
        notes: {
            let mut notes = vec![super::unreported_note(
                "h2load",
                "its mean time for request, max its longest",
            )];
            if started > done {
                notes.push(format!(
                    "h2load left {} requests unanswered when its duration ended (started, not done); it counts no connect errors",
                    started - done
                ));
            }
            notes
        },
        schedule: None,
        not_measured: super::PERCENTILES.iter().map(|m| m.to_string()).collect(),
    })
}

/// An h2load time (`154us`, `13.89ms`, `1.2s`, `3.00s`) in milliseconds.
fn time_ms(s: &str) -> Result<f64, String> {
    for (unit, ms) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] {
        if let Some(n) = s.strip_suffix(unit) {
            return Ok(round_to(number(n)? * ms, 1e6));
        }
    }
    Err(format!("`{s}` is not an h2load time (us, ms or s)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(name: &str) -> ClientStats {
        parse_h2load_output(&super::super::fixture("h2load", name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn a_run_against_the_builtin_server() {
        let s = parsed("ok_404.txt");
        assert_eq!(s.tool, "h2load");
        assert_eq!(
            (s.requests, s.duration_secs, s.requests_per_sec),
            (14515, 2.01, 7257.5)
        );
        assert_eq!(
            s.responses_by_class.as_ref().and_then(|c| c.get("4xx")),
            Some(&14515)
        );
        assert_eq!(s.non_2xx_3xx, 14515);
        assert_eq!(
            (s.latency.mean_ms, s.latency.max_ms, s.latency.p99_ms),
            (13.73, 60.12, 0.0)
        );
        assert!(s.notes[0].contains("not measured"), "{:?}", s.notes);
        assert!(
            s.notes[1].contains("100 requests unanswered"),
            "{:?}",
            s.notes
        );
    }

    #[test]
    fn refused_and_timed_out_runs_have_no_requests_and_a_killed_one_no_report() {
        let r = parsed("refused.txt");
        assert_eq!((r.requests, r.errors.total()), (0, 0));
        let t = parsed("timeouts.txt");
        assert_eq!(t.requests, 0);
        assert!(
            t.notes.iter().any(|n| n.contains("4 requests unanswered")),
            "{:?}",
            t.notes
        );
        let e = parse_h2load_output(&super::super::fixture("h2load", "killed.txt"))
            .expect_err("killed");
        assert!(e.contains("not h2load output"), "{e}");
        assert_eq!(H2load.stop_signal(), Signal::SIGTERM);
    }

    #[test]
    fn its_argv_is_http1_with_an_inactivity_timeout() {
        let s = crate::scenario::Scenario::parse(
            "name: x\nclient: { tool: h2load, connections: 100, threads: 4, duration: 3s, timeout: 5s }\nvariants: [{ name: a }]\n",
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
            H2load.argv(&s.client, &t),
            [
                "h2load",
                "--h1",
                "-c",
                "100",
                "-t",
                "4",
                "-D",
                "3",
                "-N",
                "5",
                "http://198.18.0.1:8080/abc"
            ]
        );
    }

    #[test]
    fn times_in_each_unit() {
        assert_eq!(time_ms("154us"), Ok(0.154));
        assert_eq!(time_ms("13.89ms"), Ok(13.89));
        assert_eq!(time_ms("2.01s"), Ok(2010.0));
        assert!(time_ms("3m").is_err());
    }
}
