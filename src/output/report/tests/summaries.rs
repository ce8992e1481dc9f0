//! The summaries the report tests render: small builders of runs and
//! variants, and the named summaries each snapshot is taken of. Apart from
//! the tests so that a test reads as what it checks, and the snapshots keep
//! their names (they are named after the test module).

use super::*;

pub(super) fn counts(pairs: &[(&str, u64)]) -> Counts {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// State stats with the same states for final, peak and steady mean.
pub(super) fn states(rows: &[(&str, u64, u64, f64)]) -> StateStats {
    StateStats {
        final_: rows
            .iter()
            .map(|(s, f, _, _)| (s.to_string(), *f))
            .collect(),
        peak: rows
            .iter()
            .map(|(s, _, p, _)| (s.to_string(), *p))
            .collect(),
        steady_mean: rows
            .iter()
            .map(|(s, _, _, m)| (s.to_string(), *m))
            .collect(),
    }
}

pub(super) fn sysctls(client: &[(&str, &str)], server: &[(&str, &str)]) -> RoleSysctls {
    let map = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (SysctlName::parse(k).unwrap(), SysctlValue(v.to_string())))
            .collect()
    };
    RoleSysctls {
        client: map(client),
        server: map(server),
    }
}

pub(super) fn builtin_client(requests: u64, rps: f64, p50: f64, p99: f64) -> ClientStats {
    ClientStats {
        tool: "builtin".into(),
        duration_secs: 90.0,
        requests,
        requests_per_sec: rps,
        responses_by_class: Some(counts(&[("4xx", requests)])),
        non_2xx_3xx: requests,
        connections_opened: Some(requests / 100),
        errors: ErrorCounts {
            connect: 0,
            connect_by_errno: Some(Counts::new()),
            read: 0,
            write: 0,
            timeout: 0,
        },
        latency: Latency {
            mean_ms: p50 * 1.1,
            p50_ms: p50,
            p75_ms: Some(p50 * 1.3),
            p90_ms: p50 * 1.8,
            p99_ms: p99,
            max_ms: p99 * 4.0,
        },
        cpu_secs: None,
        notes: vec![],
        schedule: None,
        not_measured: vec![],
    }
}

pub(super) fn info(complete: bool) -> RunInfo {
    RunInfo {
        scenario_file: "scenarios/tw_reuse.yaml".into(),
        description: Some(
            "How many TIME_WAIT sockets and conntrack entries pile up on each side when a\n\
             Tomcat-like server closes keep-alive connections after 100 requests, with\n\
             net.ipv4.tcp_tw_reuse off and on."
                .into(),
        ),
        started_at: "2025-11-25T18:50:02Z".into(),
        finished_at: "2025-11-25T18:54:41Z".into(),
        kernel: "Linux 6.1.0-27-amd64".into(),
        twlab_version: "0.1.0".into(),
        lab: "embedded: network namespaces joined by a veth pair".into(),
        server: "builtin (Tomcat-like, maxKeepAliveRequests 100) on 10.77.0.1:8080".into(),
        client: "builtin, 100 connections, 2 threads, 90s, GET /abc, timeout 2s".into(),
        endpoint: "10.77.0.1:8080".into(),
        command: "sudo twlab run scenarios/tw_reuse.yaml --out runs".into(),
        complete,
        order: "interleaved".into(),
        notes: vec![
            "conntrack keeps TCP TIME_WAIT entries for 120 s (nf_conntrack_tcp_timeout_time_wait), twice the socket TIME_WAIT.".into(),
        ],
    }
}

pub(super) fn run(
    run_id: &str,
    repeat: u32,
    client: Option<ClientStats>,
    server_tw: (u64, u64, f64),
    client_tw: (u64, u64, f64),
    ct_tw: (u64, u64, f64),
) -> RunSummary {
    RunSummary {
        run_id: run_id.into(),
        repeat,
        client,
        sockets: BySide {
            server: states(&[
                ("TIME_WAIT", server_tw.0, server_tw.1, server_tw.2),
                ("ESTABLISHED", 0, 100, 99.6),
                ("FIN_WAIT2", 0, 3, 0.4),
                ("SYN_RECV", 0, 0, 0.0),
            ]),
            client: states(&[
                ("TIME_WAIT", client_tw.0, client_tw.1, client_tw.2),
                ("ESTABLISHED", 0, 100, 99.7),
                ("CLOSE_WAIT", 0, 2, 0.21),
            ]),
        },
        conntrack: BySide {
            server: states(&[
                ("TIME_WAIT", ct_tw.0, ct_tw.1, ct_tw.2),
                ("ESTABLISHED", 100, 100, 100.0),
            ]),
            client: states(&[
                ("TIME_WAIT", ct_tw.0 + 4, ct_tw.1 + 4, ct_tw.2 + 3.5),
                ("ESTABLISHED", 100, 100, 100.0),
            ]),
        },
        samples: 91,
        missed_ticks: 0,
        sample_gap_secs: 0.0,
        steady_from_secs: 60.0,
        collected: None,
        steady_samples: None,
        interrupted: false,
        error: None,
        invalid: vec![],
        incomplete: vec![],
        clients: vec![],
        server_peers: None,
        ..Default::default()
    }
}

pub(super) fn two_variants() -> Summary {
    let variants = vec![
        VariantSummary {
            name: "reuse-off".into(),
            sysctls: sysctls(
                &[("net.ipv4.tcp_tw_reuse", "0")],
                &[("net.ipv4.tcp_tw_reuse", "0")],
            ),
            runs: vec![run(
                "reuse-off-1",
                1,
                Some(builtin_client(1_800_512, 20005.69, 4.61, 12.4)),
                (12000, 12110, 11873.42),
                (0, 0, 0.0),
                (23811, 23902, 23788.5),
            )],
            params: Default::default(),
            kernel: Default::default(),
        },
        VariantSummary {
            name: "reuse-on".into(),
            sysctls: sysctls(
                &[
                    ("net.ipv4.tcp_tw_reuse", "1"),
                    ("net.ipv4.ip_local_port_range", "32768\t60999"),
                ],
                &[],
            ),
            runs: vec![run(
                "reuse-on-1",
                1,
                Some(builtin_client(1_854_540, 20606.0, 4.48, 11.9)),
                (7152, 7160, 7025.4),
                (0, 0, 0.0),
                (23900, 24010, 23850.0),
            )],
            params: Default::default(),
            kernel: Default::default(),
        },
    ];
    summary(variants, true)
}

pub(super) fn summary(variants: Vec<VariantSummary>, complete: bool) -> Summary {
    Summary {
        scenario: "tw_reuse".into(),
        info: info(complete),
        comparisons: metrics::compare(&variants),
        variants,
        expectations: vec![],
        charts: vec![],
    }
}

/// Two repeats; the second of `reuse-on` failed, and wrk lost slots.
pub(super) fn with_failed_run() -> Summary {
    let mut s = two_variants();
    for v in &mut s.variants {
        let mut second = v.runs[0].clone();
        second.repeat = 2;
        second.run_id = format!("{}-2", v.name);
        v.runs.push(second);
    }
    let wrk = ClientStats {
        tool: "wrk".into(),
        duration_secs: 90.02,
        requests: 1_402_311,
        requests_per_sec: 15578.2,
        responses_by_class: None,
        non_2xx_3xx: 1_402_311,
        connections_opened: None,
        errors: ErrorCounts {
            connect: 37,
            connect_by_errno: None,
            read: 0,
            write: 0,
            timeout: 2,
        },
        latency: Latency {
            mean_ms: 5.12,
            p50_ms: 4.71,
            p75_ms: Some(5.9),
            p90_ms: 7.73,
            p99_ms: 14.05,
            max_ms: 210.33,
        },
        cpu_secs: None,
        notes: vec!["wrk reported 37 connect errors. wrk drops a connection slot for good when connect() fails, so under local port exhaustion (EADDRNOTAVAIL) the run stalls with fewer live connections (up to 37 of its 100 connections lost) — unlike twlab's builtin client, which retries; its throughput is not comparable with a run without connect errors.".into()],
        schedule: None,
        not_measured: vec![],
    };
    for v in &mut s.variants {
        for r in &mut v.runs {
            r.client = Some(wrk.clone());
        }
    }
    let interrupted = &mut s.variants[1].runs[0];
    interrupted.interrupted = true;
    if let Some(c) = interrupted.client.as_mut() {
        c.duration_secs = 41.37;
        c.requests = 702_118;
        c.requests_per_sec = 16971.67;
        c.errors.connect = 0;
        c.errors.timeout = 0;
        c.non_2xx_3xx = 702_118;
        c.notes.clear();
    }
    let failed = &mut s.variants[1].runs[1];
    failed.client = None;
    failed.sockets = BySide::default();
    failed.conntrack = BySide::default();
    failed.samples = 0;
    failed.error = Some(
        "the server exited early (status 101) while the load ran: `ip netns exec twlab-srv twlab serve --port 8080`\nstderr:\nthread 'main' panicked at src/server/builtin.rs:88: too many open files | ulimit -n 1024".into(),
    );
    s.info.complete = false;
    s.info.client = "wrk, 100 connections, 2 threads, 90s, GET /abc, timeout 2s".into();
    s.info
        .notes
        .push("The run was interrupted by SIGINT during reuse-on repeat 1.".into());
    s.comparisons = metrics::compare(&s.variants);
    s
}

/// The client closes first: no client TIME_WAIT in the baseline, some with
/// the variant, so percentages against the baseline are n/a.
pub(super) fn zero_baseline() -> Summary {
    let mut s = two_variants();
    let on = &mut s.variants[1].runs[0].sockets.client;
    *on = states(&[
        ("TIME_WAIT", 3980, 4102, 4011.5),
        ("ESTABLISHED", 0, 100, 99.7),
    ]);
    s.comparisons = metrics::compare(&s.variants);
    s
}

/// Three runs of each variant: reuse-on clearly lowers the server's
/// TIME_WAIT, conntrack barely moves, throughput is noise.
pub(super) fn repeat_three() -> Summary {
    let mut s = two_variants();
    let off = [
        (12000, 12110, 11873.42, 23811, 20005.69, 12.4),
        (12410, 12530, 12281.0, 23650, 19870.12, 12.9),
        (11790, 11905, 11702.5, 23920, 20110.4, 12.1),
    ];
    let on = [
        (7152, 7160, 7025.4, 23900, 20606.0, 11.9),
        (7388, 7420, 7301.25, 23710, 19790.55, 12.6),
        (6990, 7012, 6911.0, 23805, 20230.1, 12.2),
    ];
    for (v, figures) in s.variants.iter_mut().zip([off, on]) {
        v.runs = figures
            .iter()
            .enumerate()
            .map(|(k, (fin, peak, mean, ct, rps, p99))| {
                let repeat = k as u32 + 1;
                run(
                    &format!("{}-{repeat}", v.name),
                    repeat,
                    Some(builtin_client((rps * 90.0) as u64, *rps, 4.5, *p99)),
                    (*fin, *peak, *mean),
                    (0, 0, 0.0),
                    (*ct, ct + 91, *ct as f64 - 22.5),
                )
            })
            .collect();
    }
    s.comparisons = metrics::compare(&s.variants);
    s
}

/// Repeats with two failed expectations, an invalid run, charts, client
/// CPU time and a randomized order.
pub(super) fn flagged() -> Summary {
    let mut s = repeat_three();
    s.info.order = "randomized (seed 42)".into();
    for (v, cpu) in s.variants.iter_mut().zip([58.25, 61.5]) {
        for (k, r) in v.runs.iter_mut().enumerate() {
            if let Some(c) = r.client.as_mut() {
                c.cpu_secs = Some(cpu + k as f64);
            }
        }
    }
    s.variants[1].runs[1].invalid = vec![
        "the load generator was CPU-bound (1.97 of 2 cores busy): the server was not the bottleneck".into(),
        "the client ran out of local ports (EADDRNOTAVAIL on 1204 connects)".into(),
    ];
    s.expectations = vec![
        results::Expectation {
            text:
                "server.sockets.TIME_WAIT steady_mean of reuse-on: change <= -20% (95% confidence)"
                    .into(),
            passed: true,
            detail: "change -40.5%, 95% CI [-44.1%, -36.9%] over 3 run(s)".into(),
        },
        results::Expectation {
            text: "server.conntrack.TIME_WAIT steady_mean of reuse-on: change <= -20%".into(),
            passed: false,
            detail: "change +0.1% (mean of 3 run(s))".into(),
        },
        results::Expectation {
            text: "client.requests_per_sec of reuse-on: value >= 25000".into(),
            passed: false,
            detail: "value +20208.9 (mean of 3 run(s))".into(),
        },
    ];
    s.charts = vec![
        results::Chart {
            title: "TIME_WAIT sockets on the server".into(),
            path: "charts/server-sockets-TIME_WAIT.svg".into(),
            per_host: false,
            counter: None,
        },
        results::Chart {
            title: "TIME_WAIT conntrack entries on the server".into(),
            path: "charts/server-conntrack-TIME_WAIT.svg".into(),
            per_host: false,
            counter: None,
        },
    ];
    s.comparisons = metrics::compare(&s.variants);
    s
}
