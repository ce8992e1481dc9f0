//! Everything twlab shows a person: the markdown report and the terminal
//! table ([`report`]), SVG charts, the HTML page, JUnit XML for CI, and the
//! comparison of two run directories ([`compare`]).
//!
//! # Formats
//!
//! A *format* is a file rendered from a [`Summary`] alone: the markdown
//! report (`report.md`, [`report::Markdown`]), the HTML page
//! (`report.html`, [`html::Html`]) and JUnit XML ([`junit::Junit`]). Each
//! implements [`Format`] in a file of its own and is listed once in
//! [`FORMATS`]; that list is the only place that knows them all. Callers go
//! through it: `twlab run` writes every [`Written::EveryRun`] format after
//! each run (`run/write.rs`, after `summary.json` and the charts, each
//! format tried even when another failed), and `twlab report DIR` renders
//! those again
//! (and the HTML page with `--html`). A format returns its text and never
//! writes it ([`export`] does), and reads neither the samples nor the live
//! lab, so `twlab report DIR` can render it again at any time from
//! `summary.json` (after a fix to the renderer, or from a directory copied
//! off the lab machine).
//!
//! **A new format** goes in a file of its own here: a unit struct that
//! implements [`Format`], added to [`FORMATS`]. Pick [`Written::EveryRun`]
//! if every run should write it (then `twlab report` re-renders it too),
//! [`Written::OnRequest`] for a file written when asked for (and a flag in
//! `cli.rs` that asks), [`Written::UserPath`] for one that goes where the
//! user says (as `twlab run --junit FILE`).
//!
//! # Why charts are not a format
//!
//! [`charts`] do not fit this shape, and stay a step of their own in
//! `run/write.rs`: they are drawn from the samples (`samples.jsonl`), not
//! from the summary; they are several files, one per side, source and
//! state, as many as the samples call for; and which charts exist is
//! itself part of the summary ([`Summary::charts`], which the report and
//! the HTML page read), so the summary must know them before any format is
//! rendered.
//! Forcing them through `render(&Summary) -> String` would mean either
//! reading samples inside a format (and `twlab report` could no longer
//! re-render from `summary.json`) or one text for several files.

pub mod charts;
pub mod compare;
pub mod html;
pub mod junit;
pub(crate) mod markdown;
pub mod paths;
pub mod report;

use crate::error::Result;
use crate::results::{self, Summary};
use std::path::{Path, PathBuf};

/// A file rendered from a run's [`Summary`]; see the module documentation.
pub trait Format: Sync {
    /// What it is, for people: `markdown report`, `HTML page`, `JUnit XML`.
    fn name(&self) -> &'static str;
    /// Which file it is and when it is written.
    fn written(&self) -> Written;
    /// Its text. `run_dir` is the run directory the summary belongs to (the
    /// HTML page reads the charts listed in the summary from it); nothing
    /// else may be read, so the format can be rendered again later.
    fn render(&self, summary: &Summary, run_dir: &Path) -> Result<String>;
}

/// Where a format's file goes and when it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// This file of the run directory, written after every run of
    /// `twlab run` and again by `twlab report DIR`.
    EveryRun(&'static str),
    /// This file of the run directory, written only when asked for
    /// (`twlab report DIR --html`).
    OnRequest(&'static str),
    /// Wherever the user says and only then (`twlab run --junit FILE`): it
    /// has no name of its own in the run directory.
    UserPath,
}

impl Written {
    /// Its file in the run directory, when it has one.
    pub fn file(self) -> Option<&'static str> {
        match self {
            Written::EveryRun(f) | Written::OnRequest(f) => Some(f),
            Written::UserPath => None,
        }
    }
}

/// Every format twlab writes. The one place a new format is added.
pub static FORMATS: &[&dyn Format] = &[&report::Markdown, &html::Html, &junit::Junit];

/// The formats every run writes, each with its path in `run_dir`.
pub fn every_run(run_dir: &Path) -> impl Iterator<Item = (&'static dyn Format, PathBuf)> + '_ {
    FORMATS.iter().filter_map(move |f| match f.written() {
        Written::EveryRun(file) => Some((*f, run_dir.join(file))),
        _ => None,
    })
}

/// Render `format` from `summary` and write it at `path` (via a temporary
/// file and a rename, like every file of a run directory). A failure to
/// write names the path.
pub fn export(format: &dyn Format, summary: &Summary, run_dir: &Path, path: &Path) -> Result<()> {
    let text = format.render(summary, run_dir)?;
    write_to(path, &text)
}

/// Write `text` to a path the user named. A regular file (or a new one) is
/// written through a temporary file and renamed into place, so a reader
/// never sees half of it. Anything else is written where it is, as a
/// shell's `>` would: `/dev/stdout` is a symlink to a pipe or a terminal,
/// and a rename would replace that symlink (in the machine's `/dev`) rather
/// than write to it; a FIFO would be replaced by a regular file its reader
/// never sees; a symlink to a file is followed, not replaced.
pub fn write_to(path: &Path, text: &str) -> Result<()> {
    let special = match std::fs::symlink_metadata(path) {
        Ok(meta) => !meta.file_type().is_file(),
        Err(_) => false,
    };
    if !special {
        return results::write_text(path, text);
    }
    use std::io::Write as _;
    // Truncate only what is a regular file behind a symlink; a pipe or a
    // device has nothing to truncate (and some refuse O_TRUNC).
    let regular_target = std::fs::metadata(path).is_ok_and(|m| m.is_file());
    std::fs::File::options()
        .write(true)
        .truncate(regular_target)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| crate::error::Error::io(path.display(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn formats_have_distinct_names_and_files() {
        let names: BTreeSet<&str> = FORMATS.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), FORMATS.len());
        let files: Vec<&str> = FORMATS.iter().filter_map(|f| f.written().file()).collect();
        let distinct: BTreeSet<&str> = files.iter().copied().collect();
        assert_eq!(distinct.len(), files.len(), "{files:?}");
        // The run directory's own files are not a format's to overwrite.
        for own in [
            results::SUMMARY_FILE,
            results::ENV_FILE,
            results::SAMPLES_FILE,
            results::SCENARIO_FILE,
            results::LAB_FILE,
        ] {
            assert!(!files.contains(&own), "{own}");
        }
    }

    #[test]
    fn every_run_writes_the_markdown_report() {
        let dir = Path::new("/runs/x");
        let paths: Vec<(&str, PathBuf)> = every_run(dir).map(|(f, p)| (f.name(), p)).collect();
        assert_eq!(paths, [("markdown report", dir.join(results::REPORT_FILE))]);
    }

    fn summary() -> Summary {
        Summary {
            scenario: "tw_reuse".into(),
            info: Default::default(),
            variants: vec![],
            comparisons: vec![],
            expectations: vec![],
            charts: vec![],
        }
    }

    #[test]
    fn export_renders_and_writes_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let summary = summary();
        let path = dir.path().join(results::REPORT_FILE);
        export(&report::Markdown, &summary, dir.path(), &path).expect("written");
        let text = std::fs::read_to_string(&path).expect("read back");
        assert_eq!(text, report::render_markdown(&summary));
    }

    #[test]
    fn a_write_failure_names_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let summary = summary();
        let path = dir.path().join("no-such-dir").join(results::REPORT_FILE);
        let err = export(&report::Markdown, &summary, dir.path(), &path).unwrap_err();
        assert!(err.to_string().contains("no-such-dir/report.md"), "{err}");
    }
}
