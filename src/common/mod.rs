//! The vocabulary every stage shares, and nothing else: the server
//! endpoint and the two sides of a lab, and the counts that are measured.
//!
//! It sits at the bottom of the tree and imports no other twlab module, so
//! the scenario model, the results contract and the collectors can all use
//! these names without depending on each other.

pub mod counts;
pub mod endpoint;
pub mod names;
