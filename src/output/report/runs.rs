//! The runs one by one: id, repeat, figures and why a run failed or was
//! flagged.

use super::*;

/// Repeat numbers by variant name, in run order.
pub(super) type RunsByVariant<'a> = Vec<(&'a str, Vec<u32>)>;
pub(super) fn runs_section(out: &mut String, view: &View) {
    let repeated = view.variants.iter().any(|v| v.runs.len() > 1);
    let troubled = view
        .runs()
        .any(|(_, r)| !r.is_complete() || !r.invalid.is_empty());
    let not_run: Vec<&VariantSummary> =
        view.variants.iter().filter(|v| v.runs.is_empty()).collect();
    if !repeated && !troubled && not_run.is_empty() && view.summary.info.complete {
        return;
    }
    out.push_str(
        "## Runs\n\nEvery run on its own. Runs that failed, were interrupted or are not \
         complete are left out of the figures above.\n\n",
    );
    let show_cpu = view
        .runs()
        .any(|(_, r)| r.client.as_ref().is_some_and(|c| c.cpu_secs.is_some()));
    let metric_of = |r: &RunSummary, side: Side| {
        num_or_dash(r.sockets.get(side).steady_mean.get("TIME_WAIT").copied())
    };
    let rows = view
        .runs()
        .map(|(v, r)| {
            let mut status = Vec::new();
            if r.error.is_some() {
                status.push("**failed**");
            }
            if r.interrupted {
                status.push("interrupted");
            }
            if !r.incomplete.is_empty() {
                status.push("**not complete**");
            }
            if !r.invalid.is_empty() {
                status.push("**invalid**");
            }
            if status.is_empty() {
                status.push("ok");
            }
            let client = r.client.as_ref();
            let mut row = vec![
                code(&v.name),
                r.repeat.to_string(),
                code(&r.run_id),
                status.join(", "),
                num_or_dash(client.map(|c| c.requests as f64)),
                num_or_dash(client.map(|c| c.requests_per_sec)),
                num_or_dash(client.map(|c| c.errors.total() as f64)),
            ];
            if show_cpu {
                row.push(num_or_dash(client.and_then(|c| c.cpu_secs)));
            }
            row.push(metric_of(r, Side::Server));
            row.push(metric_of(r, Side::Client));
            row
        })
        .collect();
    let mut header = vec![
        "variant",
        "repeat",
        "run",
        "status",
        "requests",
        "req/s",
        "client errors",
    ];
    if show_cpu {
        header.push("client CPU s");
    }
    header.extend([
        "server TIME_WAIT (steady mean)",
        "client TIME_WAIT (steady mean)",
    ]);
    out.push_str(&markdown::table(&header, rows, &[0, 1, 2, 3]));
    for v in not_run {
        let _ = writeln!(out, "- {} did not run.\n", code(&v.name));
    }
    for (v, r) in view.runs() {
        if !r.incomplete.is_empty() {
            let _ = writeln!(
                out,
                "**{} repeat {} ({}) is not complete:**\n",
                code(&v.name),
                r.repeat,
                code(&r.run_id)
            );
            for why in &r.incomplete {
                let _ = writeln!(out, "- {}", inline(why));
            }
            out.push('\n');
        }
        if let Some(err) = &r.error {
            let _ = write!(
                out,
                "**{} repeat {} ({}) failed:**\n\n{}",
                code(&v.name),
                r.repeat,
                code(&r.run_id),
                fenced("text", err)
            );
        }
    }
}
