//! The load: twlab's own generator or wrk, run on the client host.

pub mod builtin;
pub mod wrk;
