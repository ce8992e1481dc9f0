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
pub mod kernel;
pub mod samples;
pub mod summary;

pub use samples::{Sample, SampleWriter, read_jsonl, read_samples};
pub use summary::*;

use crate::error::{Error, Result};
use serde::Serialize;
use std::path::Path;

pub const SAMPLES_FILE: &str = "samples.jsonl";
/// The kernel's counters of each side, one line per side and sample.
pub const KERNEL_FILE: &str = "kernel.jsonl";
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

/// Write a text file atomically: a temporary file in the same directory
/// (`.NAME.XXXXXX.tmp`), written and fsynced, renamed over `path`, then the
/// directory fsynced. A reader sees the old file or the new one, never half
/// of one, even if twlab is killed or the machine stops; and on every
/// failure (a full disk above all) the temporary file is removed again
/// (tempfile's guard), so nothing but the old file is left. The new file
/// gets the old one's permissions, or `0644` (a tempfile is `0600`).
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| Error::io(path.display(), e);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .and_then(|()| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
        })
        .map_err(fail)?;
    // On error `persist` hands the file back; dropping it removes it.
    tmp.persist(path).map_err(|e| fail(e.error))?;
    sync_dir(dir).map_err(|e| Error::io(dir.display(), e))
}

/// fsync a directory, so a rename in it survives a crash. A filesystem
/// that cannot sync directories (EINVAL) has nothing to sync.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other,
    }
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
