//! Load and check: the one step `twlab validate` and `twlab run` both
//! start from, so what validate accepts is exactly what run would start.
//!
//! The scenario file is read once (it may be a pipe, or change while
//! twlab runs) and the same text is parsed, has its `--set`s applied and is
//! checked against the lab it resolves to: `--lab FILE`, else the
//! scenario's own `lab:`, else none (the embedded namespaces).

use super::Scenario;
use super::labfile::LabSpec;
use crate::error::Result;
use std::path::Path;

/// A scenario and its lab, parsed and checked against each other.
#[derive(Debug)]
pub struct Loaded {
    pub scenario: Scenario,
    /// The real hosts it runs on; `None`: the embedded lab.
    pub lab: Option<LabSpec>,
}

impl Loaded {
    /// Read `path`, apply `overrides` (`--set`), resolve the lab (see
    /// [`resolve_lab`]) and check the scenario against it.
    pub fn load(path: &Path, overrides: &[String], lab_file: Option<&Path>) -> Result<Loaded> {
        let text = Scenario::read(path)?;
        let origin = path.display().to_string();
        let scenario = Scenario::parse(&text, &origin, overrides)?;
        let lab = resolve_lab(&scenario, lab_file)?;
        scenario.check_lab(&origin, &text, lab.as_ref())?;
        Ok(Loaded { scenario, lab })
    }
}

/// The lab a scenario runs on: `--lab FILE`, else the scenario's `lab:`,
/// else none (the embedded namespaces).
pub fn resolve_lab(scenario: &Scenario, lab_file: Option<&Path>) -> Result<Option<LabSpec>> {
    match lab_file {
        Some(path) => LabSpec::load(path).map(Some),
        None => Ok(scenario.lab.clone()),
    }
}
