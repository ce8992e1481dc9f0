//! The full sockets of a side, without time-wait sockets: what the socket
//! gauge ([`crate::measure::sock_gauge`]) counts, from a walk, for when the
//! gauge lost changes and must be set right again.

use super::{SockDiag, StateFlags, TCP_FIN_WAIT2, Tally, all_states, state_name};
use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, Side};
use std::io;

impl SockDiag {
    /// The endpoint's full sockets by state as seen from `side`: every
    /// state but TIME_WAIT, and FIN_WAIT2 without the orphans Linux keeps as
    /// time-wait sockets (sockstat counts those in its `tw`).
    pub fn count_full_sockets(&mut self, endpoint: &Endpoint, side: Side) -> io::Result<Counts> {
        let mut states = all_states();
        states.remove(StateFlags::TIME_WAIT);
        let tally: Tally = self.tally(endpoint, side, states, None)?;
        let orphans = tally.fin_wait2_timewait;
        let mut counts = tally.into_counts();
        let fw2 = state_name(TCP_FIN_WAIT2);
        if let Some(n) = counts.get_mut(fw2) {
            *n = n.saturating_sub(orphans);
            if *n == 0 {
                counts.remove(fw2);
            }
        }
        Ok(counts)
    }
}
