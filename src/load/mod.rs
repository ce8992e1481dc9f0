//! The load: the endpoint under test ([`server`]: builtin, command, docker)
//! and what drives it ([`client`]: builtin, wrk, wrk in a container), and
//! the sub-millisecond waits of their close delays ([`precise_delay`]).
//! Both stop on the signals of [`crate::shutdown`].
//!
//! A new server kind is a case of [`crate::scenario::ServerKind`] and a file
//! under `server/`; a new client kind is a case of
//! [`crate::scenario::ClientTool`] (or `ClientVia`) and a file under
//! `client/`. Each is started on a [`crate::lab::Host`], so it runs the same
//! in the embedded lab, on this machine and over SSH.

pub mod client;
pub mod precise_delay;
pub mod server;
