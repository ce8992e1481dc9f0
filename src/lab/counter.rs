//! Counting, as a role narrower than a host: what the sampler asks of the
//! hosts of a run (sockets and conntrack entries for the endpoint, the
//! kernel's counters, the server's peers), and nothing else.
//!
//! Every [`Host`] counts ([`HostCounter`] lends it this role), but
//! something that only counts need not be a host: a Swarm node's counter
//! task (`load::client::swarm::SwarmNodeHost`) reports counts and runs
//! nothing, and a test fake answers with counts it was given.

use super::Host;
use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, Side};
use crate::error::Result;
use crate::measure::kernel_counters::KernelCounters;
use async_trait::async_trait;

/// One counted host of a run.
#[async_trait]
pub trait Counter: Send + Sync {
    /// Which side the counts are of.
    fn side(&self) -> Side;

    /// As messages and the report name it.
    fn describe(&self) -> String;

    /// TCP sockets for the endpoint by state, as seen from this side.
    async fn socket_counts(&self, endpoint: Endpoint) -> Result<Counts>;

    /// conntrack entries towards the endpoint by TCP state.
    async fn conntrack_counts(&self, endpoint: Endpoint) -> Result<Counts>;

    /// The kernel's TCP and conntrack counters
    /// ([`crate::measure::kernel_counters`]).
    async fn kernel_counters(&self) -> Result<KernelCounters>;

    /// How many distinct client addresses the server's counts have seen,
    /// where this counter can tell (see [`Host::peer_addresses`]).
    async fn peer_addresses(&self, _endpoint: Endpoint) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// A host in its role of counter: each count is the host's own.
#[derive(Clone, Copy)]
pub struct HostCounter<'a>(pub &'a dyn Host);

#[async_trait]
impl Counter for HostCounter<'_> {
    fn side(&self) -> Side {
        self.0.side()
    }

    fn describe(&self) -> String {
        self.0.describe()
    }

    async fn socket_counts(&self, endpoint: Endpoint) -> Result<Counts> {
        self.0.socket_counts(endpoint).await
    }

    async fn conntrack_counts(&self, endpoint: Endpoint) -> Result<Counts> {
        self.0.conntrack_counts(endpoint).await
    }

    async fn kernel_counters(&self) -> Result<KernelCounters> {
        self.0.kernel_counters().await
    }

    async fn peer_addresses(&self, endpoint: Endpoint) -> Result<Option<u64>> {
        self.0.peer_addresses(endpoint).await
    }
}
