//! Commands that look after the machine rather than run an experiment:
//! [`doctor`] says what this machine (or a lab file's hosts) can do, and
//! [`clean`] removes what a killed run left behind, [`states`] counts an
//! endpoint's sockets and conntrack entries by state, here or in a namespace.

pub mod bench;
pub mod clean;
pub mod doctor;
pub mod states;
