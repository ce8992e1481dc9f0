//! The endpoint under load.
//!
//! A server kind knows how to start on a [`Host`](crate::lab::Host) and how to
//! stop. Only `builtin` (twlab's own Tomcat-like server, run as `twlab serve`
//! inside the server host) exists today; `docker` and `command` slot in here
//! behind the same [`start`] function.

pub mod builtin;
