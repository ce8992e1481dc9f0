//! `lab::netns::sys` against the real kernel: namespaces made as `ip netns`
//! makes them, the veth pair, sysctls inside a namespace, the conntrack
//! table, and the whole lab with no external program on PATH. The tools
//! (`ip`, `nft`, `conntrack`) are used only to check twlab's work.

mod common;
mod conntrack;
mod ct_events;
mod lab_counts;
mod netns_lifecycle;
mod no_binaries;
mod sysctl;
mod veth;
