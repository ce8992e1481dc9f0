//! twlab: reproducible TCP TIME_WAIT / conntrack experiments.
//!
//! `run()` is the whole program; `main` only exits with its code.

pub mod client;
pub mod endpoint;
pub mod error;
pub mod scenario;
pub mod server;
pub mod sockdiag;
pub mod stats;

pub fn run() -> i32 {
    0
}
