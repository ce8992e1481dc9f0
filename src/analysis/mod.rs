//! What the figures say: means and confidence intervals ([`statistics`]),
//! and the scenario's expectations checked against a summary ([`expect`]).
//!
//! It reads the results contract ([`crate::results`]) and never writes it.

pub mod completeness;
pub mod expect;
pub mod kernel;
pub mod metrics;
pub mod statistics;
pub mod validity;
