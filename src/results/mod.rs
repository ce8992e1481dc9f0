//! The run directory and its machine-readable contract.
//!
//! A run directory holds `samples.jsonl` (every sample, appended and flushed
//! as it is taken, so an interrupted run loses nothing), `env.json` (kernel,
//! versions, sysctls as they were), `scenario.yaml` (the resolved scenario),
//! `summary.json` (the figures below) and `report.md` (rendered from
//! `summary.json` alone, so `twlab report DIR` can re-render it). Tests, CI
//! gates and users read these files; the field names are the contract
//! documented in README and DESIGN.md.

pub mod env;
pub mod samples;
pub mod summary;

pub use samples::{Sample, SampleWriter, read_samples};
pub use summary::*;

use crate::error::{Error, Result};
use serde::Serialize;
use std::path::Path;

pub const SAMPLES_FILE: &str = "samples.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
pub const ENV_FILE: &str = "env.json";
pub const REPORT_FILE: &str = "report.md";
/// The report as one HTML page (`twlab report DIR --html`).
pub const HTML_FILE: &str = "report.html";
pub const SCENARIO_FILE: &str = "scenario.yaml";
/// The lab file of a run on real hosts, as resolved.
pub const LAB_FILE: &str = "lab.yaml";

/// Write a JSON file atomically enough for readers: write then rename.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::env(format!("cannot encode {}: {e}", path.display())))?;
    write_text(path, &(text + "\n"))
}

/// Write a text file via a temporary file and a rename, so a reader never
/// sees half a file even if twlab is killed while writing.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(path.display(), e))
}

/// Read `summary.json` of a run directory.
pub fn read_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join(SUMMARY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::invalid(format!(
            "{}: cannot read ({e}); is this a twlab run directory?",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
}
