//! `twlab report` and `twlab compare`: commands that read run directories
//! and write only what they are asked to, every output checked first.

use crate::cli::{CompareArgs, ReportArgs};
use crate::error::{Result, exit_code};
use crate::output::{self, compare, html};
use crate::results;
use std::path::PathBuf;

/// `twlab report DIR [--html]`.
pub fn report(args: &ReportArgs) -> Result<i32> {
    let dir = &args.dir;
    // Every file report writes, checked before the first is written.
    let mut pages: Vec<(&dyn output::Format, PathBuf)> = output::every_run(dir).collect();
    if args.html {
        pages.push((&html::Html, dir.join(results::HTML_FILE)));
    }
    let summary = results::read_summary(dir)?;
    // What report reads: the summary, and the charts the HTML page inlines.
    let mut inputs = vec![dir.join(results::SUMMARY_FILE)];
    inputs.extend(summary.charts.iter().map(|c| dir.join(&c.path)));
    for (_, path) in &pages {
        output::paths::check_output_file("report", path, &inputs)?;
    }
    // A sweep's charts are drawn from the summary alone: again here
    // (the time series need the samples, and are kept as they are).
    let sweep = output::charts::plan_sweep(&summary);
    for e in output::charts::write_sweep(dir, &sweep).errors {
        errln!("twlab: {e}");
    }
    for (format, path) in &pages {
        output::export(*format, &summary, dir, path)?;
        outln!("{}", path.display());
    }
    Ok(exit_code::OK)
}

/// `twlab compare A B [--out FILE]`.
pub fn compare(args: &CompareArgs) -> Result<i32> {
    if let Some(path) = &args.out {
        output::paths::check_output_file("--out", path, &compare::inputs(&args.a, &args.b))?;
    }
    let c = compare::compare_dirs(&args.a, &args.b)?;
    outln!("{}", compare::render_terminal(&c));
    if let Some(path) = &args.out {
        output::write_to(path, &compare::render_markdown(&c))?;
        outln!("comparison: {}", path.display());
    }
    Ok(exit_code::OK)
}
