//! PLACEHOLDER written by the lead so the crate compiles; the report helper replaces this file whole.
use crate::results::Summary;
pub fn render_markdown(summary: &Summary) -> String { format!("# {}\n", summary.scenario) }
pub fn render_terminal(summary: &Summary) -> String { summary.scenario.clone() }
