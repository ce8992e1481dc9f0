//! Is a run's figure trustworthy? A run is flagged invalid when the client
//! ran out of local ports or the load generator was CPU-bound (it, not the
//! server, set the pace), unless the scenario studies exactly that
//! (`allow:`).

use crate::common::counts::ClientStats;
use crate::scenario::{Allowance, Scenario, Variant};

/// Why a run's figures cannot be trusted, unless the scenario studies it:
/// the client ran out of local ports, or the load generator used all the
/// CPU its threads could (it, not the server, set the pace).
pub fn validity_problems(
    scenario: &Scenario,
    variant: &Variant,
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
    if !allowed(Allowance::ClientSaturation)
        && let Some(cpu) = client.cpu_secs
        && client.duration_secs > 0.0
    {
        let threads = scenario
            .effective(variant)
            .map(|(_, c)| c.threads.get())
            .unwrap_or(1) as f64;
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let usable = threads.min(cores);
        let used = cpu / client.duration_secs;
        if used >= 0.9 * usable {
            out.push(format!(
                "the load generator was CPU-bound: it used {used:.2} of the {usable} core(s) its threads can use, so it may have set the pace (add `allow: [client_saturation]` if that is what you study)"
            ));
        }
    }
    out
}
