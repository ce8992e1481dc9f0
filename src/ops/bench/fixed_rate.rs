//! A controlled load, measured: the seed's shape at a fixed rate (open
//! loop, `client.rate`) against the same lab closed-loop, alternating run
//! by run.
//!
//! Why a section of its own: with a closed loop the close rate, and so
//! every TIME_WAIT count, is whatever the machine and twlab's sampling
//! allow, and requests/s are too noisy on a shared machine to show a cost
//! of a few percent. At a fixed rate the count belongs to the scenario:
//! what this section shows is (a) that the rate is kept (achieved ÷ asked),
//! (b) that sampling at 100 ms moves neither requests/s nor the
//! TIME_WAIT count (at the final snapshot, which every setting takes)
//! against the same lab not sampled (conntrack on, the reference
//! README's overhead figures use), (c) what sampling costs the load
//! generator per request (CPU µs/request, steadier than requests/s), (d)
//! what counting sockets by walking (the way before the socket gauge)
//! costs at 100 ms, and (e) the run-to-run spread (coefficient of
//! variation) of the TIME_WAIT count at a fixed rate next to the closed
//! loop's.
//!
//! The rate is 80% of the closed-loop maximum of a warm-up run on this
//! machine (rounded down to a thousand): the top of the range in which
//! the rate must be kept to within 1%; the server holds its FIN 10 ms
//! (`server.close_delay`), so the client closes first in every setting and
//! the TIME_WAIT is the client's, not split by a race.

use super::overhead::{RunFigures, scenario_yaml, twlab_run};
use super::{BenchOptions, Row, Section, round_order};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// The first FIN is the client's in every setting (see the module docs).
const FIN_ORDER: &str = "server.close_delay=10ms";

/// The settings, alternated run by run. The first is the reference.
const SETTINGS: [(&str, &[&str]); 5] = [
    (
        "fixed rate, conntrack on, not sampled",
        &[
            "collect.interval=1h",
            "collect.conntrack_events=false",
            "collect.socket_gauge=false",
        ],
    ),
    ("fixed rate, sampling every 1s", &["collect.interval=1s"]),
    (
        "fixed rate, sampling every 100ms",
        &["collect.interval=100ms"],
    ),
    ("closed loop, sampling every 1s", &["collect.interval=1s"]),
    (
        "fixed rate, sampling every 100ms, sockets walked",
        &["collect.interval=100ms", "collect.socket_gauge=false"],
    ),
];
const REFERENCE: usize = 0;
/// The fixed rate, as a share of the warm-up's closed-loop maximum.
const RATE_SHARE: f64 = 0.8;
const CLOSED_LOOP: usize = 3;

pub async fn run(opts: &BenchOptions) -> Result<Vec<Row>> {
    let dir = opts.out.join("fixed-rate");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let scenario = dir.join("scenario.yaml");
    std::fs::write(&scenario, scenario_yaml(opts.duration, "1s"))
        .map_err(|e| Error::io(scenario.display(), e))?;
    // The closed-loop maximum of this machine, conntrack on, not sampled.
    let warm = twlab_run(
        &opts.exe,
        &scenario,
        &dir.join("warm-up"),
        &[
            FIN_ORDER,
            "collect.interval=1h",
            "collect.conntrack_events=false",
            "collect.socket_gauge=false",
        ],
    )
    .await?;
    let rate = ((warm.requests_per_sec * RATE_SHARE) / 1000.0)
        .floor()
        .max(1.0)
        * 1000.0;
    errln!(
        "  closed-loop maximum {:.0} requests/s: the fixed rate is {rate:.0}",
        warm.requests_per_sec
    );
    let rate_set = format!("client.rate={rate}");
    let mut figures: Vec<Vec<RunFigures>> = vec![Vec::new(); SETTINGS.len()];
    for round in 0..opts.runs {
        for i in round_order(SETTINGS.len(), round) {
            let (name, sets) = SETTINGS[i];
            let mut all: Vec<&str> = vec![FIN_ORDER];
            if i != CLOSED_LOOP {
                all.push(&rate_set);
            }
            all.extend(sets.iter());
            let slug: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let out: PathBuf = dir.join(format!("{slug}-{round}"));
            let f = twlab_run(&opts.exe, &scenario, &out, &all).await?;
            errln!(
                "  {name}: {:.0} requests/s, client TIME_WAIT {:.0}",
                f.requests_per_sec,
                f.client_tw
            );
            figures[i].push(f);
        }
    }
    let condition = format!(
        "embedded lab, builtin server (FIN held 10 ms) and client, {}s runs, fixed rate {rate:.0}/s",
        opts.duration.as_secs()
    );
    let mut rows = Vec::new();
    let per = |what: &str, unit: &str, get: fn(&RunFigures) -> f64| -> Vec<Row> {
        let all: Vec<Row> = SETTINGS
            .iter()
            .zip(&figures)
            .map(|((name, _), f)| {
                Row::new(Section::FixedRate, format!("{what}, {name}"), &condition)
                    .values(unit, f.iter().map(get).collect())
                    .note(spread(&f.iter().map(get).collect::<Vec<_>>()))
            })
            .collect();
        let reference = all[REFERENCE].clone();
        all.into_iter()
            .enumerate()
            .map(|(i, r)| {
                if i == REFERENCE {
                    r
                } else {
                    r.against(&reference)
                }
            })
            .collect()
    };
    rows.extend(per("requests/s", "req/s", |f| f.requests_per_sec));
    rows.extend(per("client TIME_WAIT, final", "sockets", |f| f.client_tw));
    rows.extend(per("server TIME_WAIT, final", "sockets", |f| f.server_tw));
    rows.extend(per("client CPU per request", "µs", |f| {
        f.client_cpu_us_per_request
    }));
    let asked = Row::new(Section::FixedRate, "rate asked", &condition).values("req/s", vec![rate]);
    for ((name, _), f) in SETTINGS.iter().zip(&figures).take(CLOSED_LOOP) {
        rows.push(
            Row::new(
                Section::FixedRate,
                format!("rate achieved, {name}"),
                &condition,
            )
            .values("req/s", f.iter().map(|f| f.requests_per_sec).collect())
            .against(&asked),
        );
    }
    Ok(rows)
}

/// "CV 1.2%": the coefficient of variation (sample standard deviation ÷
/// mean) of a setting's runs, its run-to-run spread.
fn spread(values: &[f64]) -> String {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 2 {
        return String::new();
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if mean == 0.0 {
        return String::new();
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    format!("CV {:.1}%", 100.0 * var.sqrt() / mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_is_the_coefficient_of_variation() {
        assert_eq!(spread(&[10.0, 10.0, 10.0]), "CV 0.0%");
        // sd of 9, 10, 11 is 1: 10% of the mean.
        assert_eq!(spread(&[9.0, 10.0, 11.0]), "CV 10.0%");
        assert_eq!(spread(&[5.0]), "");
    }
}
