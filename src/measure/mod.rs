//! Counting what TIME_WAIT experiments are about, on one host at a time:
//! TCP sockets by state for the server endpoint (`sockdiag` in-process,
//! `sockets_text` from `ss`/`netstat` output on SSH hosts) and conntrack
//! entries by TCP state (`ctnetlink` in-process, `conntrack` from the
//! tool's text on SSH hosts).
//!
//! These are the primitives; a host backend ([`crate::lab::Host`]) picks the
//! one that fits where it runs, and the sampler
//! ([`crate::run::sampler`]) calls the hosts on an interval. A new way of
//! counting goes here as one file and is wired into the `Host`
//! implementations that can use it.

// Decoding runs once per socket, conntrack entry and event (tens of
// thousands a second): an error built eagerly for `ok_or` allocates and
// frees on every call even when nothing is wrong (it was ~7% of the
// event listener's CPU).
#![deny(clippy::or_fun_call)]

pub mod conntrack;
pub mod ctnetlink;
pub mod kernel_counters;
pub mod sock_gauge;
pub mod sockdiag;
pub mod sockets_text;
