//! Is a run's figure trustworthy? A run is flagged invalid when the client
//! ran out of local ports or the load generator was CPU-bound (it, not the
//! server, set the pace), unless the scenario studies exactly that
//! (`allow:`).

use crate::common::counts::ClientStats;
use crate::common::endpoint::Side;
use crate::measure::kernel_counters::CT_REFUSALS;
use crate::results::kernel::KernelDeltas;
use crate::results::{BySide, ClientHostSummary};
use crate::scenario::{Allowance, ClientSpec, Scenario};

/// The share of `client.rate` an open-loop load must achieve for its run to
/// be what the scenario asked for.
pub const MIN_RATE_KEPT: f64 = 0.99;

/// Why a run's figures cannot be trusted, unless the scenario studies it:
/// the client ran out of local ports, or the load generator used all the
/// CPU its threads could (it, not the server, set the pace). `spec` is
/// the variant's client as its runs start it (its `set` applied).
pub fn validity_problems(
    scenario: &Scenario,
    spec: &ClientSpec,
    client: &ClientStats,
) -> Vec<String> {
    let mut out = Vec::new();
    let allowed = |a| scenario.allow.contains(&a);
    if !allowed(Allowance::PortExhaustion) {
        let eaddrnotavail = client
            .errors
            .connect_by_errno
            .as_ref()
            .and_then(|m| m.get("EADDRNOTAVAIL"))
            .copied()
            .unwrap_or(0);
        if eaddrnotavail > 0 {
            out.push(format!(
                "the client ran out of local ports: {eaddrnotavail} connects failed with EADDRNOTAVAIL (add `allow: [port_exhaustion]` if that is what you study)"
            ));
        } else if client.errors.connect_by_errno.is_none() && client.errors.connect > 0 {
            out.push(format!(
                "{} connects failed (wrk does not say why; port exhaustion is likely) and wrk lost those connection slots",
                client.errors.connect
            ));
        }
    }
    if !allowed(Allowance::MissedRate)
        && let (Some(kept), Some(schedule)) = (client.rate_kept(), &client.schedule)
        && kept < MIN_RATE_KEPT
    {
        out.push(format!(
            "the load did not keep its rate: {:.1} of the {} requests/s asked ({:.1}%); {} of {} requests went out late, up to {:.0} ms (add `allow: [missed_rate]` if that is what you study)",
            client.requests_per_sec,
            schedule.rate,
            100.0 * kept,
            schedule.late,
            schedule.scheduled,
            schedule.max_lag_ms
        ));
    }
    if !allowed(Allowance::ClientSaturation)
        && let Some(cpu) = client.cpu_secs
        && client.duration_secs > 0.0
    {
        // `cpu_secs` of several client hosts is their sum, and each host
        // has the scenario's threads.
        let threads = (spec.threads.get() * spec.hosts.get()) as f64;
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let usable = threads.min(cores);
        let used = cpu / client.duration_secs;
        if used >= 0.9 * usable {
            out.push(saturation_text(
                "the load generator was",
                cpu,
                client.duration_secs,
                usable,
            ));
        }
    }
    out
}

/// A side whose conntrack refused flows during the load (its `drop`,
/// `early_drop` or `insert_failed` statistics moved): packets were dropped
/// by the table, so the run's latency and errors are not the server's;
/// unless the scenario studies that (`allow: [conntrack_drops]`).
pub fn conntrack_refusals(scenario: &Scenario, kernel: &BySide<KernelDeltas>) -> Vec<String> {
    let mut out = Vec::new();
    if scenario.allow.contains(&Allowance::ConntrackDrops) {
        return out;
    }
    for side in [Side::Server, Side::Client] {
        let moved: Vec<String> = CT_REFUSALS
            .iter()
            .filter_map(|k| {
                let d = kernel.get(side).get(*k)?;
                d.moved()
                    .then(|| format!("{} +{}", k.trim_start_matches("conntrack."), d.delta()))
            })
            .collect();
        if !moved.is_empty() {
            out.push(format!(
                "the {side}'s conntrack table refused flows during the load ({}): packets were dropped by conntrack, so latency and errors are not the server's (add `allow: [conntrack_drops]` if that is what you study)",
                moved.join(", ")
            ));
        }
    }
    out
}

/// With several client hosts: each host that was CPU-bound on its own (it
/// used 90% of the cores its threads can use), which the total's check
/// cannot see when the others idled. Unless the scenario allows it.
/// `spec` is the variant's client, as [`validity_problems`] takes it.
pub fn host_saturation(
    scenario: &Scenario,
    spec: &ClientSpec,
    hosts: &[ClientHostSummary],
) -> Vec<String> {
    if scenario.allow.contains(&Allowance::ClientSaturation) {
        return Vec::new();
    }
    let threads = spec.threads.get() as f64;
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let usable = threads.min(cores);
    hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let load = h.load.as_ref()?;
            let used = load.cpu_secs? / load.duration_secs;
            (load.duration_secs > 0.0 && used >= 0.9 * usable).then(|| {
                saturation_text(
                    &format!("client host {} ({}) was", i + 1, h.host),
                    load.cpu_secs.unwrap_or_default(),
                    load.duration_secs,
                    usable,
                )
            })
        })
        .collect()
}

/// "… was CPU-bound: …". CPU time over the load's duration can exceed
/// the cores (a client works before its clock starts: opening 65,535
/// connections takes seconds of CPU), and "used 5.53 of the 2 cores" would
/// be nonsense: then the text says the CPU time and why it is more.
fn saturation_text(who: &str, cpu: f64, duration: f64, usable: f64) -> String {
    let used = cpu / duration;
    let what = if used > usable {
        format!(
            "it used {cpu:.1} s of CPU for a {duration:.1} s load, more than the {usable} core(s) its threads can use give in that time (it also worked outside the load's clock, e.g. opening its connections)"
        )
    } else {
        format!("it used {used:.2} of the {usable} core(s) its threads can use")
    };
    format!(
        "{who} CPU-bound: {what}, so it may have set the pace (add `allow: [client_saturation]` if that is what you study)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(cpu_per_sec: f64) -> ClientStats {
        ClientStats {
            duration_secs: 10.0,
            cpu_secs: Some(cpu_per_sec * 10.0),
            ..Default::default()
        }
    }

    #[test]
    fn a_run_whose_conntrack_dropped_is_flagged_on_that_side() {
        use crate::results::kernel::CounterDelta;
        let mut k = BySide::<KernelDeltas>::default();
        let d = |start, end| CounterDelta {
            start,
            end,
            per_sec: 0.0,
        };
        k.server.insert("conntrack.drop".into(), d(3, 3));
        k.server.insert("conntrack.new".into(), d(0, 900));
        let mut scenario =
            Scenario::parse("name: t\nvariants: [{name: a}]\n", "t.yaml", &[]).expect("scenario");
        assert!(conntrack_refusals(&scenario, &k).is_empty());
        k.client.insert("conntrack.insert_failed".into(), d(0, 12));
        let p = conntrack_refusals(&scenario, &k);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("client's conntrack") && p[0].contains("insert_failed +12"),
            "{p:?}"
        );
        // A scenario about a full table studies exactly that.
        scenario.allow.push(Allowance::ConntrackDrops);
        assert!(conntrack_refusals(&scenario, &k).is_empty());
    }

    #[test]
    fn a_client_is_cpu_bound_against_the_threads_of_all_its_hosts() {
        let text = "name: x\nclient: { threads: 1, connections: 10 }\nvariants:\n  - name: one\n  - name: four\n    set: { client.hosts: 4 }\n";
        let s = Scenario::parse(text, "s.yaml", &[]).expect("scenario");
        let client = |i: usize| s.effective(&s.variants[i]).expect("set applies").1;
        let (one, four) = (&client(0), &client(1));
        // One host, one thread, a full core: the client set the pace.
        assert_eq!(validity_problems(&s, one, &busy(0.97)).len(), 1);
        // Four hosts of one thread each: the same core in all is not.
        if std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2) {
            assert!(validity_problems(&s, four, &busy(0.97)).is_empty());
        }
        let over = validity_problems(&s, four, &busy(64.0));
        assert_eq!(over.len(), 1);
        // More CPU than the cores give in the load's time is said as such.
        assert!(
            over[0].contains("640.0 s of CPU for a 10.0 s load, more than the"),
            "{over:?}"
        );
        assert!(!over[0].contains(" of the "), "{over:?}");
        // …but one host of the four pinned at its one thread's core is.
        let host = |cpu| ClientHostSummary {
            host: "netns h".into(),
            load: Some(busy(cpu)),
            ..Default::default()
        };
        let hosts = [host(0.1), host(0.95), host(0.1), host(0.1)];
        let problems = host_saturation(&s, four, &hosts);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("client host 2 (netns h)"),
            "{problems:?}"
        );
    }
}
