//! What the load client saw: throughput, latency and errors per variant,
//! aggregated over runs, with their spread.

use super::*;
use crate::common::counts::{ClientStats, Schedule};
use crate::common::names::LoadMetric;

/// Client figures of a variant: means over its completed runs with a client.
#[derive(Default)]
pub(super) struct ClientAgg {
    runs: u32,
    tools: BTreeSet<String>,
    requests: f64,
    requests_per_sec: f64,
    /// Latency means over the runs whose tool reports them; `None` when
    /// no run's did (httperf and h2load report no percentiles).
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
    connect: f64,
    read: f64,
    write: f64,
    timeout: f64,
    non_2xx_3xx: f64,
    connections_opened: Option<f64>,
    cpu_secs: Option<f64>,
    by_errno: Option<BTreeMap<String, f64>>,
}
impl ClientAgg {
    fn of(v: &VariantSummary) -> Self {
        let mut a = ClientAgg::default();
        let clients: Vec<_> = v
            .runs
            .iter()
            .filter(|r| r.is_complete())
            .filter_map(|r| r.client.as_ref())
            .collect();
        for c in &clients {
            a.runs += 1;
            a.tools.insert(c.tool.clone());
            a.requests += c.requests as f64;
            a.requests_per_sec += c.requests_per_sec;
            a.connect += c.errors.connect as f64;
            a.read += c.errors.read as f64;
            a.write += c.errors.write as f64;
            a.timeout += c.errors.timeout as f64;
            a.non_2xx_3xx += c.non_2xx_3xx as f64;
        }
        let n = f64::from(a.runs.max(1));
        for f in [
            &mut a.requests,
            &mut a.requests_per_sec,
            &mut a.connect,
            &mut a.read,
            &mut a.write,
            &mut a.timeout,
            &mut a.non_2xx_3xx,
        ] {
            *f /= n;
        }
        let latency = |metric: &str, f: fn(&ClientStats) -> f64| {
            let values: Vec<f64> = clients
                .iter()
                .filter(|c| c.measured(metric))
                .map(|c| f(c))
                .collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        a.p50 = latency(LoadMetric::LatencyP50.name(), |c| c.latency.p50_ms);
        a.p90 = latency(LoadMetric::LatencyP90.name(), |c| c.latency.p90_ms);
        a.p99 = latency(LoadMetric::LatencyP99.name(), |c| c.latency.p99_ms);
        a.max = latency(LoadMetric::LatencyMax.name(), |c| c.latency.max_ms);
        let opened: Vec<u64> = clients
            .iter()
            .filter_map(|c| c.connections_opened)
            .collect();
        if !opened.is_empty() && opened.len() == clients.len() {
            a.connections_opened = Some(opened.iter().sum::<u64>() as f64 / n);
        }
        let cpu: Vec<f64> = clients.iter().filter_map(|c| c.cpu_secs).collect();
        if !cpu.is_empty() {
            a.cpu_secs = Some(cpu.iter().sum::<f64>() / cpu.len() as f64);
        }
        let errnos: Vec<&Counts> = clients
            .iter()
            .filter_map(|c| c.errors.connect_by_errno.as_ref())
            .collect();
        if !errnos.is_empty() {
            let mut sums: BTreeMap<String, f64> = BTreeMap::new();
            for counts in errnos {
                for (errno, k) in counts {
                    *sums.entry(errno.clone()).or_insert(0.0) += *k as f64;
                }
            }
            a.by_errno = Some(sums.into_iter().map(|(e, s)| (e, s / n)).collect());
        }
        a
    }
}
pub(super) fn client_tables(out: &mut String, view: &View) {
    out.push_str("## Client: throughput, latency and errors\n\n");
    let aggs: Vec<ClientAgg> = view.variants.iter().map(ClientAgg::of).collect();
    if aggs.iter().all(|a| a.runs == 0) {
        out.push_str("No completed run reported client figures.\n\n");
        return;
    }
    out.push_str(
        "Means over each variant's completed runs; latency in milliseconds, of completed requests",
    );
    let show_cpu = aggs.iter().any(|a| a.cpu_secs.is_some());
    if show_cpu {
        out.push_str("; *CPU s* is the CPU time the load generator used (user + system)");
    }
    out.push_str(".\n\n");
    let verdicts = view.any_verdict();
    let show_opened = aggs.iter().any(|a| a.connections_opened.is_some());
    let mut header = vec!["variant", "tool", "requests", "req/s", "change"];
    if verdicts {
        header.push("verdict");
    }
    if show_opened {
        header.push("connections opened");
    }
    header.extend(["p50 ms", "p90 ms", "p99 ms", "max ms"]);
    if show_cpu {
        header.push("CPU s");
    }
    let rows = client_rows(
        view,
        &aggs,
        header.len(),
        Some("no completed run"),
        |i, a| {
            let mut row = vec![
                a.tools.iter().cloned().collect::<Vec<_>>().join(", "),
                num(a.requests),
                num(a.requests_per_sec),
                view.change_cell(i, LoadMetric::RequestsPerSec.name(), true),
            ];
            if verdicts {
                row.push(view.verdict_cell(i, LoadMetric::RequestsPerSec.name()));
            }
            if show_opened {
                row.push(num_or_dash(a.connections_opened));
            }
            row.extend([a.p50, a.p90, a.p99, a.max].map(|v| v.map_or("n/a".into(), num)));
            if show_cpu {
                row.push(num_or_dash(a.cpu_secs));
            }
            row
        },
    );
    let left = if verdicts { vec![0, 1, 5] } else { vec![0, 1] };
    out.push_str(&markdown::table(&header, rows, &left));

    client_spread(out, view);
    schedule_table(out, view);

    let show_errno = aggs
        .iter()
        .any(|a| a.by_errno.as_ref().is_some_and(|m| !m.is_empty()));
    let mut header = vec![
        "variant",
        "connect",
        "read",
        "write",
        "timeout",
        "non-2xx/3xx",
    ];
    if show_errno {
        header.push("connect errors by errno");
    }
    let rows = client_rows(view, &aggs, header.len(), None, |_, a| {
        let mut row = vec![
            num(a.connect),
            num(a.read),
            num(a.write),
            num(a.timeout),
            num(a.non_2xx_3xx),
        ];
        if show_errno {
            row.push(match &a.by_errno {
                Some(m) if !m.is_empty() => m
                    .iter()
                    .map(|(e, n)| format!("{e} {}", num(*n)))
                    .collect::<Vec<_>>()
                    .join(", "),
                Some(_) => "none".into(),
                None => "not reported".into(),
            });
        }
        row
    });
    out.push_str("Errors (socket errors as wrk splits them, and responses that were neither 2xx nor 3xx):\n\n");
    let mut left = vec![0];
    if show_errno {
        left.push(header.len() - 1);
    }
    out.push_str(&markdown::table(&header, rows, &left));

    // The same note on several runs is listed once, with the runs it concerns.
    let mut notes: Vec<(&str, RunsByVariant)> = Vec::new();
    for (v, r) in view.runs() {
        for note in r.client.iter().flat_map(|c| c.notes.iter()) {
            let pos = match notes.iter().position(|(n, _)| *n == note.as_str()) {
                Some(p) => p,
                None => {
                    notes.push((note.as_str(), Vec::new()));
                    notes.len() - 1
                }
            };
            let runs = &mut notes[pos].1;
            match runs.iter_mut().find(|(name, _)| *name == v.name.as_str()) {
                Some((_, repeats)) => repeats.push(r.repeat),
                None => runs.push((v.name.as_str(), vec![r.repeat])),
            }
        }
    }
    if !notes.is_empty() {
        out.push_str("### Client notes\n\n");
        for (note, runs) in notes {
            let runs: Vec<String> = runs
                .iter()
                .map(|(name, repeats)| {
                    let list: Vec<String> = repeats.iter().map(u32::to_string).collect();
                    let word = if repeats.len() == 1 {
                        "repeat"
                    } else {
                        "repeats"
                    };
                    format!("{} {word} {}", code(name), list.join(", "))
                })
                .collect();
            let _ = writeln!(out, "- {}: {}", runs.join("; "), inline(note));
        }
        out.push('\n');
    }
}
/// A row of `width` cells per variant of a client table: the variant, then
/// `cells` of its client figures; a variant without completed runs gets
/// `empty` (when given), then dashes.
pub(super) fn client_rows(
    view: &View,
    aggs: &[ClientAgg],
    width: usize,
    empty: Option<&str>,
    cells: impl Fn(usize, &ClientAgg) -> Vec<String>,
) -> Vec<Vec<String>> {
    aggs.iter()
        .enumerate()
        .map(|(i, a)| {
            let mut row = vec![variant_label(&view.variants[i], i)];
            if a.runs == 0 {
                row.extend(empty.map(str::to_string));
                row.resize(width, "—".into());
            } else {
                row.extend(cells(i, a));
            }
            row
        })
        .collect()
}
/// How the client's key figures spread over the runs of each variant that
/// has two or more.
pub(super) fn client_spread(out: &mut String, view: &View) {
    let metrics: Vec<(&str, &str)> = [
        ("req/s", LoadMetric::RequestsPerSec.name()),
        ("latency p50 (ms)", LoadMetric::LatencyP50.name()),
        ("latency p99 (ms)", LoadMetric::LatencyP99.name()),
        ("client errors", LoadMetric::Errors.name()),
        ("connections opened", LoadMetric::ConnectionsOpened.name()),
    ]
    .into_iter()
    .filter(|(_, m)| view.any_value(m))
    .collect();
    let mut rows = Vec::new();
    for (label, metric) in &metrics {
        for (i, v) in view.variants.iter().enumerate() {
            let Some(s) = view.stats(i, metric).filter(|s| s.n >= 2) else {
                continue;
            };
            rows.push(vec![
                label.to_string(),
                variant_label(v, i),
                s.n.to_string(),
                num(s.mean),
                num(s.median),
                num(s.min),
                num(s.max),
                num(s.stddev),
            ]);
        }
    }
    if rows.is_empty() {
        return;
    }
    out.push_str("Spread over the runs of each variant with two or more:\n\n");
    out.push_str(&markdown::table(
        &[
            "metric", "variant", "runs", "mean", "median", "min", "max", "sd",
        ],
        rows,
        &[0, 1],
    ));
}

/// An open-loop load (`client.rate`): per variant, the rate asked and
/// achieved, how many requests went out late and by how much, and the
/// service time beside the latency from the scheduled time (which the
/// table above gives).
fn schedule_table(out: &mut String, view: &View) {
    let mut rows = Vec::new();
    for v in view.variants {
        let runs: Vec<(&ClientStats, &Schedule)> = v
            .runs
            .iter()
            .filter(|r| r.is_complete())
            .filter_map(|r| r.client.as_ref())
            .filter_map(|c| c.schedule.as_ref().map(|s| (c, s)))
            .collect();
        if runs.is_empty() {
            continue;
        }
        let n = runs.len() as f64;
        let mean = |f: &dyn Fn(&ClientStats, &Schedule) -> f64| {
            runs.iter().map(|(c, s)| f(c, s)).sum::<f64>() / n
        };
        let asked = mean(&|_, s| s.rate);
        let achieved = mean(&|c, _| c.requests_per_sec);
        rows.push(vec![
            code(&v.name),
            num(asked),
            num(achieved),
            format!("{:.1}%", 100.0 * achieved / asked.max(f64::MIN_POSITIVE)),
            num(mean(&|_, s| s.late as f64)),
            num(runs.iter().map(|(_, s)| s.max_lag_ms).fold(0.0, f64::max)),
            num(mean(&|_, s| s.service_latency.p50_ms)),
            num(mean(&|_, s| s.service_latency.p99_ms)),
        ]);
    }
    if rows.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "Open loop (`client.rate`): the requests per second asked for and achieved (means over \
         completed runs), the requests sent more than {} ms after their scheduled time \
         (*late*, per run) and the longest wait. Latency above is measured from each \
         request's scheduled time (coordinated omission corrected); the service time, from \
         sending it, is here.\n\n",
        crate::common::counts::LATE_AFTER_MS
    );
    out.push_str(&markdown::table(
        &[
            "variant",
            "rate asked",
            "req/s achieved",
            "kept",
            "late",
            "max lag ms",
            "service p50 ms",
            "service p99 ms",
        ],
        rows,
        &[0],
    ));
}
